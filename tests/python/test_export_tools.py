# Tests the Python side of baton's safetensors export: safetensors_io round trips, check_export.py
# reports the accuracy of a LeNet-5 twin trained here (and fails when told another), save_twin.py
# writes the seeded twin and its spoiled variants make check_export.py fail loudly. Needs Fashion-MNIST.
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import baton_data  # noqa: E402
import safetensors_io  # noqa: E402
import twins  # noqa: E402

DATA_DIR = os.environ.get("FASHION_MNIST", "/usr/share/datasets/fashion-mnist")


def train(model, images, labels, steps, batch_size=64, lr=0.05, seed=0):
    """`steps` SGD steps (momentum 0.9) on shuffled minibatches; leaves the model in eval mode."""
    torch.manual_seed(seed)
    order = np.random.default_rng(seed).permutation(len(images))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for step in range(steps):
        batch = order[step * batch_size:(step + 1) * batch_size]
        optimizer.zero_grad()
        F.cross_entropy(model(torch.from_numpy(images[batch])), torch.from_numpy(labels[batch])).backward()
        optimizer.step()
    model.eval()


def evaluate(model, images, labels):
    with torch.no_grad():
        predictions = [model(torch.from_numpy(images[i:i + 1000])).argmax(1) for i in range(0, len(images), 1000)]
    return float((torch.cat(predictions).numpy() == labels).mean())


def run(script, *args):
    """(exit status, stdout, stderr) of tests/python/<script> with args."""
    done = subprocess.run([sys.executable, os.path.join(HERE, script), *map(str, args)], capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


@unittest.skipUnless(os.path.isdir(DATA_DIR), f"no Fashion-MNIST in {DATA_DIR} (set FASHION_MNIST)")
class ExportTools(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        train_pixels, train_labels = baton_data.read_idx(DATA_DIR, "train")
        cls.mean, cls.std = baton_data.channel_statistics(train_pixels)
        cls.train_images = baton_data.normalise(train_pixels, cls.mean, cls.std)
        cls.train_labels = train_labels
        test_pixels, cls.test_labels = baton_data.read_idx(DATA_DIR, "t10k")
        cls.test_images = baton_data.normalise(test_pixels, cls.mean, cls.std)
        cls.lenet, cls.lenet_accuracy, cls.lenet_file = cls.trained("lenet5", steps=300)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def trained(cls, name, steps, batch_size=64, lr=0.05):
        """(twin trained `steps` steps on 1x28x28 Fashion-MNIST, its test accuracy, the file it is saved in)."""
        torch.manual_seed(0)
        model, input_shape, classes = twins.pytorch_models.build(name, (1, 28, 28), 10)
        train(model, cls.train_images, cls.train_labels, steps, batch_size, lr)
        path = os.path.join(cls.tmp.name, f"{name}.safetensors")
        safetensors_io.write(path, twins.state_arrays(model),
                             twins.metadata(name, input_shape, classes, cls.mean, cls.std))
        return model, evaluate(model, cls.test_images, cls.test_labels), path

    def check_export(self, path, expected, *extra):
        return run("check_export.py", "--export", path, "--data-dir", DATA_DIR, "--expect-accuracy", expected,
                   "--threads", 2, *extra)

    def test_safetensors_round_trip(self):
        tensors, metadata = safetensors_io.read(self.lenet_file)
        self.assertEqual(metadata, twins.metadata("lenet5", (1, 28, 28), 10, self.mean, self.std))
        expected = twins.state_arrays(self.lenet)
        self.assertEqual(sorted(tensors), sorted(expected))
        for name, array in expected.items():
            self.assertEqual((tensors[name].dtype, tensors[name].shape), (array.dtype, array.shape))
            self.assertTrue(np.array_equal(tensors[name], array), name)
        scalar = {"bn1.num_batches_tracked": np.array(7, np.int64), "w": np.ones((2, 3), np.float32)}
        path = os.path.join(self.tmp.name, "scalar.safetensors")
        safetensors_io.write(path, scalar, {"model": "x"})
        tensors, _ = safetensors_io.read(path)
        self.assertEqual((tensors["bn1.num_batches_tracked"].shape, int(tensors["bn1.num_batches_tracked"])), ((), 7))

    def test_reader_rejects_truncated_file(self):
        path = os.path.join(self.tmp.name, "truncated.safetensors")
        with open(self.lenet_file, "rb") as f:
            content = f.read()
        with open(path, "wb") as f:
            f.write(content[:-4])
        with self.assertRaisesRegex(ValueError, "truncated"):
            safetensors_io.read(path)

    def test_check_export_reports_the_trained_accuracy(self):
        self.assertGreater(self.lenet_accuracy, 0.7)  # trained, not chance
        status, out, err = self.check_export(self.lenet_file, self.lenet_accuracy)
        self.assertEqual(status, 0, err)
        self.assertEqual(json.loads(out), {"accuracy": self.lenet_accuracy, "expected": self.lenet_accuracy,
                                           "images": 10000})

    def test_check_export_fails_outside_the_tolerance(self):
        status, _, err = self.check_export(self.lenet_file, self.lenet_accuracy + 0.0011)
        self.assertNotEqual(status, 0)
        self.assertIn("differs from the expected", err)
        status, _, err = self.check_export(self.lenet_file, self.lenet_accuracy - 0.0009)
        self.assertEqual(status, 0, err)
        status, _, err = self.check_export(self.lenet_file, self.lenet_accuracy - 0.015, "--tolerance", 0.02)
        self.assertEqual(status, 0, err)

    def test_cifar_model_on_fashion_mnist(self):
        _, accuracy, path = self.trained("resnet20", steps=40, batch_size=32, lr=0.02)
        self.assertGreater(accuracy, 0.3)  # BN running statistics and weights both matter
        status, out, err = self.check_export(path, accuracy)
        self.assertEqual(status, 0, err)
        self.assertEqual(json.loads(out)["accuracy"], accuracy)

    def test_save_twin_writes_the_seeded_twin(self):
        path = os.path.join(self.tmp.name, "fresh.safetensors")
        status, _, err = run("save_twin.py", "--model", "resnet20", "--input", "1x28x28", "--classes", 10,
                             "--output", path, "--seed", 3, "--data-dir", DATA_DIR)
        self.assertEqual(status, 0, err)
        tensors, metadata = safetensors_io.read(path)
        self.assertEqual(metadata, twins.metadata("resnet20", (1, 28, 28), 10, self.mean, self.std))
        torch.manual_seed(3)
        expected = twins.state_arrays(twins.pytorch_models.build("resnet20", (1, 28, 28), 10)[0])
        self.assertEqual(list(tensors), [k for k in expected if k.endswith("num_batches_tracked")] +
                         [k for k in expected if not k.endswith("num_batches_tracked")])  # int64 first
        self.assertTrue(all(np.array_equal(tensors[name], array) for name, array in expected.items()))

    def test_spoiled_files_fail_loudly(self):
        for option, value, message in [("--drop", "conv1.bias", "Missing key"),
                                        ("--rename", "fc3.bias=fc4.bias", "Unexpected key"),
                                        ("--reshape", "conv2.weight", "size mismatch")]:
            with self.subTest(option=option):
                path = os.path.join(self.tmp.name, f"spoiled{option}.safetensors")
                status, _, err = run("save_twin.py", "--model", "lenet5", "--input", "1x28x28", "--classes", 10,
                                     "--output", path, option, value)
                self.assertEqual(status, 0, err)
                status, _, err = self.check_export(path, 0.1)
                self.assertNotEqual(status, 0)
                self.assertIn(message, err)

    def test_wrong_dtype_fails(self):
        arrays = twins.state_arrays(twins.pytorch_models.build("resnet20", (1, 28, 28), 10)[0])
        arrays["bn1.num_batches_tracked"] = arrays["bn1.num_batches_tracked"].astype(np.float32)
        path = os.path.join(self.tmp.name, "float_counter.safetensors")
        safetensors_io.write(path, arrays, twins.metadata("resnet20", (1, 28, 28), 10, self.mean, self.std))
        status, _, err = self.check_export(path, 0.1)
        self.assertNotEqual(status, 0)
        self.assertIn("wrong dtypes: bn1.num_batches_tracked", err)


if __name__ == "__main__":
    unittest.main()
