# Checks that every PyTorch twin (bench/pytorch_models.py) names its state_dict as baton names its
# tensors: <zoo node name>.<weight|bias|running_mean|running_var>, plus PyTorch's num_batches_tracked.
# The expected names are derived here from the naming rules of layers/zoo.cpp, not from the twins.
import os
import re
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twins  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def conv(node, bias=True):  # also linear layers
    return [f"{node}.weight"] + ([f"{node}.bias"] if bias else [])


def bn(node):
    return [f"{node}.{name}" for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def lenet5():
    return [key for node in ("conv1", "conv2", "fc1", "fc2", "fc3") for key in conv(node)]


def alexnet():
    return [key for node in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8") for key in conv(node)]


def vgg(convs):  # conv<k> (with bias) + bn<k> for k = 1..convs, then fc
    return [key for k in range(1, convs + 1) for key in conv(f"conv{k}") + bn(f"bn{k}")] + conv("fc")


def cifar_resnet(depth):  # option-A shortcuts have no parameters
    keys = conv("conv1", bias=False) + bn("bn1")
    for stage in range(1, 4):
        for block in range((depth - 2) // 6):
            keys += [key for k in (1, 2) for key in conv(f"layer{stage}.{block}.conv{k}", False) +
                     bn(f"layer{stage}.{block}.bn{k}")]
    return keys + conv("fc")


def imagenet_resnet(blocks, convs_per_block):  # downsample.0/.1 where the first block changes shape
    keys = conv("conv1", bias=False) + bn("bn1")
    for stage, count in enumerate(blocks, 1):
        for block in range(count):
            name = f"layer{stage}.{block}"
            keys += [key for k in range(1, convs_per_block + 1)
                     for key in conv(f"{name}.conv{k}", False) + bn(f"{name}.bn{k}")]
            if block == 0 and (stage > 1 or convs_per_block == 3):  # stride 2, or 64 -> 256 channels
                keys += conv(f"{name}.downsample.0", False) + bn(f"{name}.downsample.1")
    return keys + conv("fc")


EXPECTED = {
    "lenet5": lenet5(), "alexnet": alexnet(), "vgg11": vgg(8), "vgg16": vgg(13),
    **{f"resnet{depth}": cifar_resnet(depth) for depth in (20, 56, 110, 224, 362)},
    "resnet18": imagenet_resnet([2, 2, 2, 2], 2), "resnet50": imagenet_resnet([3, 4, 6, 3], 3),
}


def baton_binary():
    return os.environ.get("BATON", os.path.join(REPO, "build", "runtime", "baton"))


class TwinNames(unittest.TestCase):
    def test_zoo_is_covered(self):
        self.assertEqual(list(EXPECTED), list(twins.pytorch_models.ZOO))

    def test_state_dict_keys(self):
        for name, expected in EXPECTED.items():
            with self.subTest(model=name):
                keys = list(twins.pytorch_models.build(name)[0].state_dict())
                self.assertEqual(keys, expected)

    @unittest.skipUnless(os.access(baton_binary(), os.X_OK), "no baton binary (set BATON)")
    def test_param_counts_match_baton(self):
        listing = subprocess.run([baton_binary(), "models"], check=True, capture_output=True, text=True).stdout
        baton = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s", listing, re.MULTILINE)}
        for name in EXPECTED:
            with self.subTest(model=name):
                model = twins.pytorch_models.build(name)[0]
                self.assertEqual(twins.pytorch_models.param_count(model), baton[name])


if __name__ == "__main__":
    unittest.main()
