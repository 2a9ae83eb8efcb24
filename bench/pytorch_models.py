# PyTorch twins of baton's model zoo (layers/zoo.cpp) and a training-step timer that prints the
# same JSON line as `baton bench`, so bench/compare_pytorch.sh can put the two side by side.
# Run with Debian's /usr/bin/python3 (python3-torch); --params-only cross-checks parameter counts.
import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("pytorch_models.py: PyTorch is missing; install python3-torch and run it with /usr/bin/python3")


def conv_bn_relu(in_channels, out_channels, kernel, stride=1, bias=False):
    """Conv (padding kernel//2) + batch norm + ReLU, as Builder::conv_bn_relu."""
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=bias),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def lenet5(input_shape, classes):
    padding = 2 if input_shape[1] == 28 else 0  # 28x28 is padded to LeNet's 32x32
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 6, 5, 1, padding), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True),
        nn.Linear(120, 84), nn.ReLU(inplace=True),
        nn.Linear(84, classes))


def alexnet(input_shape, classes):
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 64, 5, 1, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2), lrn(),
        nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten())
    flat = flat_features(features, input_shape)
    return nn.Sequential(
        features,
        nn.Dropout(0.5), nn.Linear(flat, 4096), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
        nn.Linear(4096, classes))


def flat_features(module, input_shape):
    """Feature count after `module` for one image of input_shape."""
    with torch.no_grad():
        return module(torch.zeros(1, *input_shape)).shape[1]


VGG_CONFIGS = {  # 0 is a 2x2 max pool
    "vgg11": [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
    "vgg16": [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0],
}


def vgg(config, input_shape, classes):
    layers, channels = [], input_shape[0]
    for width in config:
        if width == 0:
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += conv_bn_relu(channels, width, 3, bias=True)
            channels = width
    features = nn.Sequential(*layers, nn.Flatten())
    return nn.Sequential(features, nn.Linear(flat_features(features, input_shape), classes))


class ShortcutPad(nn.Module):
    """Option-A shortcut: subsample by stride, then zero-pad channels equally on both sides."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.stride = stride
        self.before = (out_channels - in_channels) // 2
        self.after = out_channels - in_channels - self.before

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))


class CifarBlock(nn.Module):
    """Basic block of He et al.'s CIFAR ResNet with an option-A shortcut."""

    def __init__(self, in_channels, planes, stride):
        super().__init__()
        self.branch = nn.Sequential(
            *conv_bn_relu(in_channels, planes, 3, stride),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes))
        needs_pad = stride != 1 or in_channels != planes
        self.shortcut = ShortcutPad(in_channels, planes, stride) if needs_pad else nn.Identity()

    def forward(self, x):
        return F.relu(self.branch(x) + self.shortcut(x))


def cifar_resnet(depth, input_shape, classes):
    blocks = (depth - 2) // 6
    layers, channels = conv_bn_relu(input_shape[0], 16, 3), 16
    for stage in range(3):
        planes = 16 << stage
        for block in range(blocks):
            layers.append(CifarBlock(channels, planes, 2 if stage > 0 and block == 0 else 1))
            channels = planes
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes))


class ImagenetBlock(nn.Module):
    """torchvision-style basic block or bottleneck (stride on the 3x3 conv), projection shortcut."""

    def __init__(self, in_channels, planes, stride, bottleneck):
        super().__init__()
        expansion = 4 if bottleneck else 1
        out_channels = planes * expansion
        if bottleneck:
            layers = conv_bn_relu(in_channels, planes, 1) + conv_bn_relu(planes, planes, 3, stride)
            layers += [nn.Conv2d(planes, out_channels, 1, bias=False)]
        else:
            layers = conv_bn_relu(in_channels, planes, 3, stride)
            layers += [nn.Conv2d(planes, out_channels, 3, 1, 1, bias=False)]
        self.branch = nn.Sequential(*layers, nn.BatchNorm2d(out_channels))
        self.downsample = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        return F.relu(self.branch(x) + self.downsample(x))


def imagenet_resnet(depth, input_shape, classes):
    bottleneck = depth >= 50
    blocks = [3, 4, 6, 3] if bottleneck else [2, 2, 2, 2]
    expansion = 4 if bottleneck else 1
    layers = [nn.Conv2d(input_shape[0], 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
              nn.MaxPool2d(3, 2, 1)]
    channels = 64
    for stage, count in enumerate(blocks):
        planes = 64 << stage
        for block in range(count):
            layers.append(ImagenetBlock(channels, planes, 2 if stage > 0 and block == 0 else 1, bottleneck))
            channels = planes * expansion
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes))


MNIST, CIFAR, IMAGENET = (1, 28, 28), (3, 32, 32), (3, 224, 224)
# name -> (builder(input_shape, classes), natural input shape, natural class count), in zoo order
ZOO = {
    "lenet5": (lenet5, MNIST, 10),
    "alexnet": (alexnet, CIFAR, 10),
    "vgg11": (lambda s, k: vgg(VGG_CONFIGS["vgg11"], s, k), CIFAR, 10),
    "vgg16": (lambda s, k: vgg(VGG_CONFIGS["vgg16"], s, k), CIFAR, 10),
    **{f"resnet{d}": ((lambda d: lambda s, k: cifar_resnet(d, s, k))(d), CIFAR, 10)
       for d in (20, 56, 110, 224, 362)},
    "resnet18": (lambda s, k: imagenet_resnet(18, s, k), IMAGENET, 1000),
    "resnet50": (lambda s, k: imagenet_resnet(50, s, k), IMAGENET, 1000),
}


def build(name):
    """The named zoo model, its input shape and class count."""
    builder, input_shape, classes = ZOO[name]
    return builder(input_shape, classes), input_shape, classes


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def time_training(name, batch_size, iterations, warmup):
    """Median wall time (ms) of full SGD training steps on one random batch, and the parameter count."""
    model, input_shape, classes = build(name)
    model.train()
    images = torch.randn(batch_size, *input_shape)
    labels = torch.randint(0, classes, (batch_size,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    step_ms = []
    for i in range(warmup + iterations):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()
        if i >= warmup:
            step_ms.append(1e3 * (time.perf_counter() - start))
    return sorted(step_ms)[len(step_ms) // 2], param_count(model)  # upper median, as baton bench


def parse_args():
    parser = argparse.ArgumentParser(description="Time PyTorch training steps of a baton zoo model.")
    parser.add_argument("--model", default="resnet20", choices=list(ZOO))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--flops-per-image", type=float, default=None,
                        help="training FLOPs per image (from baton) to report GFLOP/s; else gflops is null")
    parser.add_argument("--params-only", action="store_true",
                        help="print {model: parameter count} for every zoo model and exit")
    args = parser.parse_args()
    if args.iterations < 1 or args.batch_size < 1 or args.threads < 1 or args.warmup < 0:
        parser.error("--iterations, --batch-size and --threads must be at least 1, --warmup at least 0")
    return args


def main():
    args = parse_args()
    torch.manual_seed(1)
    if args.params_only:
        print(json.dumps({name: param_count(build(name)[0]) for name in ZOO}))
        return
    torch.set_num_threads(args.threads)
    median_ms, params = time_training(args.model, args.batch_size, args.iterations, args.warmup)
    gflops = None
    if args.flops_per_image is not None:
        gflops = args.flops_per_image * args.batch_size / (median_ms / 1e3) / 1e9
    print(json.dumps({"model": args.model, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                      "median_step_ms": median_ms, "images_per_sec": args.batch_size / (median_ms / 1e3),
                      "gflops": gflops, "params": params}))


if __name__ == "__main__":
    main()
