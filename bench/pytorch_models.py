# PyTorch twins of baton's model zoo (layers/zoo.cpp) and a training-step timer that prints the
# same JSON line as `baton bench`, so bench/compare_pytorch.sh can put the two side by side. Modules
# carry baton's node names: state_dict keys are baton's tensor names (tests/python/test_twin_names.py).
# Run with Debian's /usr/bin/python3 (python3-torch); --params-only cross-checks parameter counts.
import argparse
import json
import sys
import time
from collections import OrderedDict

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("pytorch_models.py: PyTorch is missing; install python3-torch and run it with /usr/bin/python3")


def conv_bn_relu(k, in_channels, out_channels, kernel, stride=1, bias=False):
    """Modules conv<k>, bn<k>, relu<k>: conv (padding kernel//2) + batch norm + ReLU, as Builder::conv_bn_relu."""
    return [(f"conv{k}", nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=bias)),
            (f"bn{k}", nn.BatchNorm2d(out_channels)), (f"relu{k}", nn.ReLU(inplace=True))]


def named(layers):
    """A Sequential whose modules carry baton's node names, so state_dict keys are <node>.<parameter>."""
    return nn.Sequential(OrderedDict(layers))


def flat_features(layers, input_shape):
    """Feature count after the (name, module) `layers` for one image of input_shape."""
    with torch.no_grad():
        return named(layers)(torch.zeros(1, *input_shape)).shape[1]


def lenet5(input_shape, classes):
    padding = 2 if input_shape[1] == 28 else 0  # 28x28 is padded to LeNet's 32x32
    return named([
        ("conv1", nn.Conv2d(input_shape[0], 6, 5, 1, padding)), ("relu1", nn.ReLU(inplace=True)),
        ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU(inplace=True)), ("pool2", nn.MaxPool2d(2, 2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(16 * 5 * 5, 120)), ("relu3", nn.ReLU(inplace=True)),
        ("fc2", nn.Linear(120, 84)), ("relu4", nn.ReLU(inplace=True)),
        ("fc3", nn.Linear(84, classes))])


def alexnet(input_shape, classes):
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    features = [
        ("conv1", nn.Conv2d(input_shape[0], 64, 5, 1, 2)), ("relu1", nn.ReLU(inplace=True)),
        ("pool1", nn.MaxPool2d(3, 2)), ("lrn1", lrn()),
        ("conv2", nn.Conv2d(64, 192, 5, 1, 2)), ("relu2", nn.ReLU(inplace=True)), ("lrn2", lrn()),
        ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(192, 384, 3, 1, 1)), ("relu3", nn.ReLU(inplace=True)),
        ("conv4", nn.Conv2d(384, 256, 3, 1, 1)), ("relu4", nn.ReLU(inplace=True)),
        ("conv5", nn.Conv2d(256, 256, 3, 1, 1)), ("relu5", nn.ReLU(inplace=True)), ("pool5", nn.MaxPool2d(3, 2)),
        ("flatten", nn.Flatten())]
    return named(features + [
        ("drop6", nn.Dropout(0.5)), ("fc6", nn.Linear(flat_features(features, input_shape), 4096)),
        ("relu6", nn.ReLU(inplace=True)),
        ("drop7", nn.Dropout(0.5)), ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU(inplace=True)),
        ("fc8", nn.Linear(4096, classes))])


VGG_CONFIGS = {  # 0 is a 2x2 max pool
    "vgg11": [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
    "vgg16": [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0],
}


def vgg(config, input_shape, classes):
    layers, channels, conv, pool = [], input_shape[0], 0, 0
    for width in config:
        if width == 0:
            pool += 1
            layers.append((f"pool{pool}", nn.MaxPool2d(2, 2)))
        else:
            conv += 1
            layers += conv_bn_relu(conv, channels, width, 3, bias=True)
            channels = width
    layers.append(("flatten", nn.Flatten()))
    return named(layers + [("fc", nn.Linear(flat_features(layers, input_shape), classes))])


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


class ResidualBlock(nn.Module):
    """relu(branch(x) + shortcut(x)), with baton's node names as children: the branch's modules in order
    (conv1, bn1, relu1, conv2, ...), then the shortcut (an Identity where baton has no node), then relu."""

    def __init__(self, branch, shortcut_name, shortcut):
        super().__init__()
        self.branch = [name for name, _ in branch]
        for name, module in branch:
            self.add_module(name, module)
        self.shortcut_name = shortcut_name
        self.add_module(shortcut_name, shortcut)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = x
        for name in self.branch:
            out = getattr(self, name)(out)
        return self.relu(out + getattr(self, self.shortcut_name)(x))


def cifar_block(in_channels, planes, stride):
    """Basic block of He et al.'s CIFAR ResNet with an option-A shortcut."""
    branch = conv_bn_relu(1, in_channels, planes, 3, stride) + [
        ("conv2", nn.Conv2d(planes, planes, 3, 1, 1, bias=False)), ("bn2", nn.BatchNorm2d(planes))]
    needs_pad = stride != 1 or in_channels != planes
    return ResidualBlock(branch, "shortcut", ShortcutPad(in_channels, planes, stride) if needs_pad else nn.Identity())


def imagenet_block(in_channels, planes, stride, bottleneck):
    """torchvision-style basic block or bottleneck (stride on the 3x3 conv), projection shortcut."""
    out_channels = planes * (4 if bottleneck else 1)
    if bottleneck:
        branch = conv_bn_relu(1, in_channels, planes, 1) + conv_bn_relu(2, planes, planes, 3, stride) + [
            ("conv3", nn.Conv2d(planes, out_channels, 1, bias=False)), ("bn3", nn.BatchNorm2d(out_channels))]
    else:
        branch = conv_bn_relu(1, in_channels, planes, 3, stride) + [
            ("conv2", nn.Conv2d(planes, out_channels, 3, 1, 1, bias=False)), ("bn2", nn.BatchNorm2d(out_channels))]
    downsample = nn.Identity()
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    return ResidualBlock(branch, "downsample", downsample)


def resnet(stem, stages, channels, classes):
    """stem, then layer1, layer2, ... (each a Sequential of blocks named 0, 1, ...), pooling and fc."""
    layers = stem + [(f"layer{i + 1}", nn.Sequential(*blocks)) for i, blocks in enumerate(stages)]
    return named(layers + [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                           ("fc", nn.Linear(channels, classes))])


def cifar_resnet(depth, input_shape, classes):
    blocks = (depth - 2) // 6
    stem, channels, stages = conv_bn_relu(1, input_shape[0], 16, 3), 16, []
    for stage in range(3):
        planes = 16 << stage
        stages.append([])
        for block in range(blocks):
            stages[-1].append(cifar_block(channels, planes, 2 if stage > 0 and block == 0 else 1))
            channels = planes
    return resnet(stem, stages, channels, classes)


def imagenet_resnet(depth, input_shape, classes):
    bottleneck = depth >= 50
    blocks = [3, 4, 6, 3] if bottleneck else [2, 2, 2, 2]
    expansion = 4 if bottleneck else 1
    stem = [("conv1", nn.Conv2d(input_shape[0], 64, 7, 2, 3, bias=False)), ("bn1", nn.BatchNorm2d(64)),
            ("relu1", nn.ReLU(inplace=True)), ("maxpool", nn.MaxPool2d(3, 2, 1))]
    channels, stages = 64, []
    for stage, count in enumerate(blocks):
        planes = 64 << stage
        stages.append([])
        for block in range(count):
            stages[-1].append(imagenet_block(channels, planes, 2 if stage > 0 and block == 0 else 1, bottleneck))
            channels = planes * expansion
    return resnet(stem, stages, channels, classes)


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


def build(name, input_shape=None, classes=None):
    """The named zoo model, its input shape and class count (the zoo's own unless given, as baton does
    for a data set: e.g. resnet20 for 1x28x28 Fashion-MNIST)."""
    builder, natural_shape, natural_classes = ZOO[name]
    input_shape = tuple(input_shape or natural_shape)
    classes = classes or natural_classes
    return builder(input_shape, classes), input_shape, classes


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def median_step_ms(step, iterations, warmup, before_each=lambda: None):
    """Upper median (as baton bench) wall time in ms of step() over `iterations` calls after `warmup`
    untimed ones; before_each() runs untimed before every call (a barrier between ranks)."""
    step_ms = []
    for i in range(warmup + iterations):
        before_each()
        start = time.perf_counter()
        step()
        if i >= warmup:
            step_ms.append(1e3 * (time.perf_counter() - start))
    return sorted(step_ms)[len(step_ms) // 2]


def time_training(name, batch_size, iterations, warmup, device="cpu", channels_last=False, compiled=False):
    """Median wall time (ms) of full SGD training steps on one random batch, and the parameter count.
    On a GPU each step ends with torch.cuda.synchronize(), so it is timed whole. channels_last keeps
    images and conv weights NHWC (PyTorch 2's fastest CPU form); compiled wraps the model in
    torch.compile, whose compilation falls in the untimed warm-up steps."""
    model, input_shape, classes = build(name)
    model.to(device).train()
    images = torch.randn(batch_size, *input_shape, device=device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer_model = model
    if compiled:
        model = torch.compile(model)
    labels = torch.randint(0, classes, (batch_size,), device=device)
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    optimizer = torch.optim.SGD(optimizer_model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()
        synchronize()

    return median_step_ms(step, iterations, warmup), param_count(optimizer_model)


def parse_args():
    parser = argparse.ArgumentParser(description="Time PyTorch training steps of a baton zoo model.")
    parser.add_argument("--model", default="resnet20", choices=list(ZOO))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--flops-per-image", type=float, default=None,
                        help="training FLOPs per image (from baton) to report GFLOP/s; else gflops is null")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where to train: cuda is eager PyTorch on the GPU with cuDNN, TF32 off unless --tf32")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 tensor cores in convolutions and matmuls")
    parser.add_argument("--channels-last", action="store_true", help="NHWC images and conv weights")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch 2)")
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
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("pytorch_models.py: --device cuda, but PyTorch sees no GPU")
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    median_ms, params = time_training(args.model, args.batch_size, args.iterations, args.warmup, args.device,
                                      args.channels_last, args.compile)
    gflops = None
    if args.flops_per_image is not None:
        gflops = args.flops_per_image * args.batch_size / (median_ms / 1e3) / 1e9
    print(json.dumps({"model": args.model, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                      "device": args.device, "tf32": args.tf32, "torch": torch.__version__,
                      "channels_last": args.channels_last, "compile": args.compile,
                      "median_step_ms": median_ms, "images_per_sec": args.batch_size / (median_ms / 1e3),
                      "gflops": gflops, "params": params}))


if __name__ == "__main__":
    main()
