// Data sets for training: MNIST / Fashion-MNIST (IDX, gzipped or plain), CIFAR-10 (binary version)
// and a seeded synthetic set. Images are floats in [0,1] (raw byte / 255), plain N×C×H×W; every
// malformed file or bad option is reported as one baton::Error sentence naming the thing and the fix.
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

struct DataOptions {
  std::string name{};               // one of dataset_names()
  std::string dir{};                // folder with the files (ignored for "synthetic")
  Dims synthetic_dims = {};         // {C, H, W} for "synthetic"
  int synthetic_classes = 10;
  int64_t synthetic_train = 0;      // >= 1
  int64_t synthetic_test = 0;       // >= 0
  uint64_t seed = 0;                // synthetic only
};

// "fashion-mnist", "mnist", "cifar10", "synthetic".
const std::vector<std::string>& dataset_names();

// Loads the training and test sets named by options.name.
DataSplit load_data(const DataOptions& options);

// One IDX pair (images magic 0x00000803, labels magic 0x00000801, 10 classes); each file may be
// gzipped or plain.
Dataset read_idx(const std::string& images_path, const std::string& labels_path, const std::string& name);

// Concatenates CIFAR-10 binary batch files: records of 1 label byte + 3×32×32 channel-major pixels.
Dataset read_cifar10_batches(const std::vector<std::string>& paths, const std::string& name);

// Samples first_sample .. first_sample+count-1 of an endless synthetic set defined by the seed: each
// class has a fixed random prototype image and a sample is its class prototype blended with noise,
// so the labels are learnable. Train and test sets of one seed use disjoint sample ranges.
Dataset make_synthetic(const Dims& image_dims, int classes, int64_t count, uint64_t seed, const std::string& name,
                       int64_t first_sample = 0);

// Per-channel mean and (population) standard deviation, computed on the training set and applied to
// every set as (x - mean) / stddev. A constant channel gets stddev 1 so that it normalises to 0.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> stddev;
};
Normalization channel_statistics(const Dataset& dataset);

}  // namespace baton
