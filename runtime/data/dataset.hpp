// Data sets for training: MNIST / Fashion-MNIST (IDX, gzipped or plain), CIFAR-10 (binary version)
// and a seeded synthetic set. Images are floats in [0,1] (raw byte / 255), plain N×C×H×W; every
// malformed file or bad option is reported as one baton::Error sentence naming the thing and the fix.
// Sizes a file announces are checked against the file and against a memory limit before anything
// is allocated; a product of sizes that overflows 64 bits is refused by name, not computed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/base/tensor.hpp"

namespace baton {

struct Dataset {
  std::string name{};          // e.g. "fashion-mnist/train"
  Dims image_dims{};           // {C, H, W}
  int classes = 0;
  std::vector<float> images{};    // size() * image_elements() values in [0,1]
  std::vector<int32_t> labels{};  // each in [0, classes)

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t image_elements() const { return element_count(image_dims); }  // C*H*W
};

struct DataSplit {
  Dataset train;
  Dataset test;
};

// The default limit on a data set's memory: half of this machine's physical memory, or of the
// cgroup's memory limit when that is lower (a container, a Slurm job). At least 1 GiB.
int64_t default_max_data_bytes();

// The memory the images and labels of `count` images of `image_elements` values take (4 bytes a
// value, 4 a label); -1 if that overflows int64.
int64_t data_bytes(int64_t count, int64_t image_elements);

struct DataOptions {
  std::string name{};               // one of dataset_names()
  std::string dir{};                // folder with the files (ignored for "synthetic")
  Dims synthetic_dims = {};         // {C, H, W} for "synthetic"
  int synthetic_classes = 10;
  int64_t synthetic_train = 0;      // >= 1
  int64_t synthetic_test = 0;       // >= 0
  uint64_t seed = 0;                // synthetic only
  int pad = 0;                      // zero pixels added on every side of every image (--pad)
  // The memory the training and test sets together may claim as float images + int32 labels
  // (synthetic data: also its class prototypes), checked against what the files announce or the
  // synthetic sizes ask for before anything is allocated; 0 = no limit. The CLI's --max-memory.
  int64_t max_bytes = default_max_data_bytes();
};

// "fashion-mnist", "mnist", "cifar10", "synthetic".
const std::vector<std::string>& dataset_names();

// Loads the training and test sets named by options.name, padded by options.pad; refuses, before
// reading any data, sets whose announced size is over options.max_bytes (both sets together), and
// before padding, padded sets over it.
DataSplit load_data(const DataOptions& options);

// The images with `pad` zero pixels added on every side: {C, H, W} becomes {C, H + 2 pad, W + 2 pad}.
Dataset pad_images(const Dataset& data, int pad);

// One IDX pair (images magic 0x00000803, labels magic 0x00000801, 10 classes); each file may be
// gzipped or plain. The headers are checked first: at least one image, sides 1..32768, the sizes
// they announce against the plain file's size (or, gzipped, against the most its compressed size
// can hold) and against max_bytes (0: no limit). Then exactly the announced bytes are read, streaming
// into the announced images: a file that ends early or holds more is refused, naming it.
// A path that is a directory, a FIFO or a device is refused without opening it for reading.
Dataset read_idx(const std::string& images_path, const std::string& labels_path, const std::string& name,
                 int64_t max_bytes = default_max_data_bytes());

// Concatenates CIFAR-10 binary batch files: records of 1 label byte + 3×32×32 channel-major pixels.
// Plain files are checked against max_bytes (0: no limit) by their size before they are read;
// gzipped ones are decompressed record by record and refused as soon as they pass it.
Dataset read_cifar10_batches(const std::vector<std::string>& paths, const std::string& name,
                             int64_t max_bytes = default_max_data_bytes());

// Samples first_sample .. first_sample+count-1 of an endless synthetic set defined by the seed: each
// class has a fixed random prototype image and a sample is its class prototype blended with noise,
// so the labels are learnable. Train and test sets of one seed use disjoint sample ranges.
// Refuses sizes whose products overflow and sets (with their prototypes) over max_bytes (0: no limit).
Dataset make_synthetic(const Dims& image_dims, int classes, int64_t count, uint64_t seed, const std::string& name,
                       int64_t first_sample = 0, int64_t max_bytes = default_max_data_bytes());

// Per-channel mean and (population) standard deviation, computed on the training set and applied to
// every set as (x - mean) / stddev. A constant channel gets stddev 1 so that it normalises to 0.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> stddev;
};
Normalization channel_statistics(const Dataset& dataset);

}  // namespace baton
