# Fashion-MNIST / MNIST (IDX files, gzipped or not) read and normalised exactly as baton does, so the
# Python checks feed a twin bit-identical float32 inputs: pixels become float(byte) / 255.0f
# (runtime/data/dataset.cpp), then (x - mean[c]) * (1.0f / std[c]) (runtime/data/data_loader.cpp).
import gzip
import os

import numpy as np

UNIT_SCALE = np.arange(256, dtype=np.float32) / np.float32(255)  # dataset.cpp unit_scale_table()


def read_idx(data_dir, prefix):
    """(uint8 pixels [N, 1, H, W], int64 labels [N]) of <prefix>-images/labels-idx*-ubyte[.gz] in data_dir."""
    images = read_file(data_dir, f"{prefix}-images-idx3-ubyte")
    labels = read_file(data_dir, f"{prefix}-labels-idx1-ubyte")
    if images[:4] != b"\0\0\x08\x03" or labels[:4] != b"\0\0\x08\x01":
        raise ValueError(f"{data_dir}: {prefix} files are not IDX images and labels")
    count, rows, cols = np.frombuffer(images, ">u4", 3, 4)
    pixels = np.frombuffer(images, np.uint8, count * rows * cols, 16).reshape(count, 1, rows, cols)
    targets = np.frombuffer(labels, np.uint8, np.frombuffer(labels, ">u4", 1, 4)[0], 8).astype(np.int64)
    if len(targets) != count:
        raise ValueError(f"{data_dir}: {count} {prefix} images but {len(targets)} labels")
    return pixels, targets


def read_file(data_dir, base):
    """Content of data_dir/base, else of data_dir/base.gz (dataset.cpp find_data_file)."""
    path = os.path.join(data_dir, base)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    with gzip.open(path + ".gz", "rb") as f:
        return f.read()


def channel_statistics(pixels):
    """Per-channel mean and standard deviation of the unit-scaled pixels as float32 lists, as baton's
    channel_statistics (dataset.cpp): double sums, std = sqrt(max(0, E[x^2] - mean^2)), 1 if <= 1e-6."""
    values = UNIT_SCALE.astype(np.float64)
    mean, std = [], []
    for c in range(pixels.shape[1]):
        counts = np.bincount(pixels[:, c].ravel(), minlength=256)  # sums over the 256 possible values
        n = counts.sum()
        m = counts @ values / n
        s = np.sqrt(max(0.0, counts @ (values * values) / n - m * m))
        mean.append(float(np.float32(m)))
        std.append(float(np.float32(s)) if s > 1e-6 else 1.0)
    return mean, std


def normalise(pixels, mean, std):
    """float32 [N, C, H, W]: (pixel / 255 - mean[c]) * (1 / std[c]), every step rounded to float32."""
    shape = (1, -1, 1, 1)
    inv_std = np.float32(1) / np.asarray(std, np.float32).reshape(shape)
    return (UNIT_SCALE[pixels] - np.asarray(mean, np.float32).reshape(shape)) * inv_std
