// Readers for the IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary formats, the synthetic data set and
// per-channel statistics. Files are read whole through zlib, which also reads plain files, and every
// header, size and label is checked before it is trusted.
#include "runtime/data/dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "runtime/base/error.hpp"
#include "runtime/base/rng.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;
constexpr uint32_t kIdxMaxSide = 1u << 15;
constexpr int kDigitClasses = 10;  // MNIST, Fashion-MNIST and CIFAR-10 all have ten
constexpr int64_t kCifarPixels = 3 * 32 * 32;
constexpr int64_t kCifarRecord = 1 + kCifarPixels;
constexpr double kConstantChannel = 1e-6;  // a smaller standard deviation is rounding noise

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

uint32_t big_endian32(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

// Closes a zlib file handle on every path out of read_file_bytes.
struct GzCloser {
  gzFile file;
  ~GzCloser() { gzclose(file); }
};

// The whole (decompressed) content of a gzipped or plain file.
std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ignored;
  BATON_CHECK(fs::is_regular_file(path, ignored), "'" << path << "' does not exist or is not a file; check the path");
  gzFile file = gzopen(path.c_str(), "rb");
  BATON_CHECK(file != nullptr, "could not open '" << path << "' (" << std::strerror(errno) << "); check its permissions");
  GzCloser closer{file};
  gzbuffer(file, 1u << 18);
  constexpr size_t kChunk = size_t{1} << 22;
  std::vector<uint8_t> bytes;
  size_t used = 0;
  for (;;) {
    bytes.resize(used + kChunk);
    int got = gzread(file, bytes.data() + used, static_cast<unsigned>(kChunk));
    if (got <= 0) break;
    used += static_cast<size_t>(got);
  }
  bytes.resize(used);
  int status = Z_OK;
  const char* reason = gzerror(file, &status);
  BATON_CHECK(status == Z_OK, "'" << path << "' could not be decompressed (zlib: " << reason
                                  << "); the download may be corrupt, fetch it again");
  return bytes;
}

// value / 255 for every byte value, exactly as a division gives it.
const std::array<float, 256>& unit_scale_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> values{};
    for (int i = 0; i < 256; ++i) values[i] = static_cast<float>(i) / 255.0f;
    return values;
  }();
  return table;
}

void append_unit_pixels(const uint8_t* pixels, int64_t count, std::vector<float>& out) {
  const auto& table = unit_scale_table();
  size_t start = out.size();
  out.resize(start + static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out[start + i] = table[pixels[i]];
}

// Checks the magic number and the header of an IDX file; returns the sizes the header announces.
std::vector<uint32_t> idx_header(const std::vector<uint8_t>& bytes, const std::string& path, uint32_t magic,
                                 const char* kind, int rank) {
  BATON_CHECK(bytes.size() >= 4, "'" << path << "' is truncated: it ends after " << bytes.size()
                                     << " bytes, before the IDX magic number; download it again");
  uint32_t found = big_endian32(bytes.data());
  BATON_CHECK(found == magic, "'" << path << "' is not an IDX " << kind << " file (magic " << hex32(found)
                                  << " instead of " << hex32(magic) << "); the download may be corrupt");
  size_t header_bytes = 4 + 4 * static_cast<size_t>(rank);
  BATON_CHECK(bytes.size() >= header_bytes, "'" << path << "' is truncated: it ends after " << bytes.size()
                                                << " bytes, inside its " << header_bytes
                                                << "-byte IDX header; download it again");
  std::vector<uint32_t> sizes(rank);
  for (int i = 0; i < rank; ++i) sizes[i] = big_endian32(bytes.data() + 4 + 4 * i);
  return sizes;
}

void check_complete(const std::vector<uint8_t>& bytes, const std::string& path, uint64_t needed,
                    const std::string& announced) {
  BATON_CHECK(bytes.size() >= needed, "'" << path << "' is truncated: its header announces " << announced << " ("
                                          << needed << " bytes) but the file ends after " << bytes.size()
                                          << " bytes; download it again");
}

void read_idx_images(const std::string& path, Dataset& out) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  std::vector<uint32_t> sizes = idx_header(bytes, path, kIdxImagesMagic, "image", 3);
  uint32_t count = sizes[0], rows = sizes[1], cols = sizes[2];
  BATON_CHECK(rows >= 1 && cols >= 1 && rows <= kIdxMaxSide && cols <= kIdxMaxSide,
              "'" << path << "' announces images of " << rows << "x" << cols
                  << ", which is not a usable image size; the file is corrupt");
  uint64_t pixels = uint64_t{count} * rows * cols;
  check_complete(bytes, path, 16 + pixels,
                 std::to_string(count) + " images of " + std::to_string(rows) + "x" + std::to_string(cols));
  out.image_dims = {1, int64_t{rows}, int64_t{cols}};
  out.images.reserve(pixels);
  append_unit_pixels(bytes.data() + 16, static_cast<int64_t>(pixels), out.images);
}

void read_idx_labels(const std::string& path, Dataset& out) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  uint32_t count = idx_header(bytes, path, kIdxLabelsMagic, "label", 1)[0];
  check_complete(bytes, path, 8 + uint64_t{count}, std::to_string(count) + " labels");
  out.labels.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t label = bytes[8 + i];
    BATON_CHECK(label < kDigitClasses, "'" << path << "' has label " << int{label} << " at index " << i
                                           << ", outside 0.." << kDigitClasses - 1
                                           << "; the file is corrupt or not an MNIST-style label file");
    out.labels[i] = label;
  }
}

std::string joined_names() {
  std::string text;
  for (const std::string& name : dataset_names()) text += (text.empty() ? "" : ", ") + name;
  return text;
}

std::string data_dir_hint(const std::string& name) {
  if (name == "fashion-mnist")
    return "pass --data-dir with the folder holding the Fashion-MNIST IDX files (Debian: apt-get install "
           "dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)";
  if (name == "mnist")
    return "pass --data-dir with the folder holding the MNIST IDX files (train-images-idx3-ubyte and the three "
           "others, gzipped or not)";
  return "pass --data-dir with the folder holding the CIFAR-10 binary version (data_batch_1.bin ... "
         "data_batch_5.bin and test_batch.bin, from cifar-10-binary.tar.gz)";
}

void check_data_dir(const DataOptions& options) {
  BATON_CHECK(!options.dir.empty(), "no data directory given for '" << options.name << "'; "
                                                                    << data_dir_hint(options.name));
  std::error_code ignored;
  BATON_CHECK(fs::is_directory(options.dir, ignored), "data directory '" << options.dir << "' does not exist; "
                                                                         << data_dir_hint(options.name));
}

// dir/base, or dir/base.gz when only the gzipped file is there.
std::string find_data_file(const DataOptions& options, const std::string& base) {
  std::string plain = (fs::path(options.dir) / base).string();
  std::string gzipped = plain + ".gz";
  std::error_code ignored;
  if (fs::is_regular_file(plain, ignored)) return plain;
  if (fs::is_regular_file(gzipped, ignored)) return gzipped;
  BATON_FAIL("neither '" << plain << "' nor '" << gzipped << "' exists; " << data_dir_hint(options.name));
}

void check_same_image_dims(const DataSplit& split) {
  BATON_CHECK(split.train.image_dims == split.test.image_dims,
              "test images of '" << split.test.name << "' are " << to_string(split.test.image_dims)
                                 << " but training images are " << to_string(split.train.image_dims)
                                 << "; the data directory mixes two data sets");
}

DataSplit load_idx_data(const DataOptions& options) {
  check_data_dir(options);
  auto read_part = [&](const std::string& prefix, const std::string& part) {
    return read_idx(find_data_file(options, prefix + "-images-idx3-ubyte"),
                    find_data_file(options, prefix + "-labels-idx1-ubyte"), options.name + "/" + part);
  };
  DataSplit split{read_part("train", "train"), read_part("t10k", "test")};
  check_same_image_dims(split);
  return split;
}

DataSplit load_cifar10_data(const DataOptions& options) {
  check_data_dir(options);
  std::vector<std::string> train_paths;
  for (int i = 1; i <= 5; ++i) train_paths.push_back(find_data_file(options, "data_batch_" + std::to_string(i) + ".bin"));
  return {read_cifar10_batches(train_paths, options.name + "/train"),
          read_cifar10_batches({find_data_file(options, "test_batch.bin")}, options.name + "/test")};
}

DataSplit load_synthetic_data(const DataOptions& options) {
  BATON_CHECK(options.synthetic_train >= 1 && options.synthetic_test >= 0,
              "synthetic data needs at least 1 training sample and 0 or more test samples (got "
                  << options.synthetic_train << " and " << options.synthetic_test << "); pass positive sizes");
  return {make_synthetic(options.synthetic_dims, options.synthetic_classes, options.synthetic_train, options.seed,
                         "synthetic/train"),
          make_synthetic(options.synthetic_dims, options.synthetic_classes, options.synthetic_test, options.seed,
                         "synthetic/test", options.synthetic_train)};
}

void check_synthetic_options(const Dims& image_dims, int classes, int64_t count, int64_t first_sample) {
  bool dims_ok = image_dims.size() == 3;
  for (int64_t size : image_dims) dims_ok = dims_ok && size >= 1;
  BATON_CHECK(dims_ok, "synthetic images need three sizes {C,H,W}, each at least 1 (got " << to_string(image_dims)
                                                                                          << "); pass e.g. 3x32x32");
  BATON_CHECK(classes >= 2, "synthetic data needs at least 2 classes (got " << classes << "); pass a larger number");
  BATON_CHECK(count >= 0 && first_sample >= 0, "synthetic sample range " << first_sample << " + " << count
                                                                         << " is negative; pass sizes of 0 or more");
}

}  // namespace

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"fashion-mnist", "mnist", "cifar10", "synthetic"};
  return names;
}

DataSplit load_data(const DataOptions& options) {
  if (options.name == "fashion-mnist" || options.name == "mnist") return load_idx_data(options);
  if (options.name == "cifar10") return load_cifar10_data(options);
  if (options.name == "synthetic") return load_synthetic_data(options);
  BATON_FAIL("unknown dataset '" << options.name << "'; choose one of " << joined_names());
}

Dataset read_idx(const std::string& images_path, const std::string& labels_path, const std::string& name) {
  Dataset out;
  out.name = name;
  out.classes = kDigitClasses;
  read_idx_images(images_path, out);
  read_idx_labels(labels_path, out);
  int64_t image_count = static_cast<int64_t>(out.images.size()) / out.image_elements();
  BATON_CHECK(image_count == out.size(), "'" << labels_path << "' holds " << out.size() << " labels but '"
                                             << images_path << "' holds " << image_count
                                             << " images; the two files do not belong together");
  return out;
}

Dataset read_cifar10_batches(const std::vector<std::string>& paths, const std::string& name) {
  BATON_CHECK(!paths.empty(), "no CIFAR-10 batch files were given for '" << name << "'; " << data_dir_hint("cifar10"));
  Dataset out;
  out.name = name;
  out.image_dims = {3, 32, 32};
  out.classes = kDigitClasses;
  for (const std::string& path : paths) {
    std::vector<uint8_t> bytes = read_file_bytes(path);
    int64_t size = static_cast<int64_t>(bytes.size());
    BATON_CHECK(size > 0 && size % kCifarRecord == 0,
                "'" << path << "' holds " << size << " bytes, which is not a positive multiple of the "
                    << kCifarRecord << "-byte CIFAR-10 record (1 label byte + 3x32x32 pixels); the file is "
                    << "truncated or not the CIFAR-10 binary version");
    out.images.reserve(out.images.size() + static_cast<size_t>(size / kCifarRecord * kCifarPixels));
    for (int64_t record = 0; record < size / kCifarRecord; ++record) {
      const uint8_t* at = bytes.data() + record * kCifarRecord;
      BATON_CHECK(at[0] < kDigitClasses, "'" << path << "' has label " << int{at[0]} << " in record " << record
                                             << ", outside 0.." << kDigitClasses - 1
                                             << "; the file is corrupt or not the CIFAR-10 binary version");
      out.labels.push_back(at[0]);
      append_unit_pixels(at + 1, kCifarPixels, out.images);
    }
  }
  return out;
}

Dataset make_synthetic(const Dims& image_dims, int classes, int64_t count, uint64_t seed, const std::string& name,
                       int64_t first_sample) {
  check_synthetic_options(image_dims, classes, count, first_sample);
  Dataset out;
  out.name = name;
  out.image_dims = image_dims;
  out.classes = classes;
  const int64_t elements = out.image_elements();
  const uint64_t prototype_key = mix_keys(seed, 1), label_key = mix_keys(seed, 2), noise_key = mix_keys(seed, 3);
  std::vector<float> prototypes(static_cast<size_t>(classes * elements));
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t e = 0; e < elements; ++e) prototypes[c * elements + e] = uniform01(mix_keys(prototype_key, c), e);
  out.labels.resize(count);
  out.images.resize(static_cast<size_t>(count * elements));
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t sample = static_cast<uint64_t>(first_sample + i);
    const int32_t label = static_cast<int32_t>(mix_keys(label_key, sample) % static_cast<uint64_t>(classes));
    const uint64_t sample_noise = mix_keys(noise_key, sample);
    out.labels[i] = label;
    for (int64_t e = 0; e < elements; ++e)
      out.images[i * elements + e] = 0.5f * prototypes[label * elements + e] + 0.5f * uniform01(sample_noise, e);
  }
  return out;
}

Normalization channel_statistics(const Dataset& dataset) {
  BATON_CHECK(dataset.size() > 0, "cannot compute channel statistics of the empty data set '"
                                      << dataset.name << "'; it needs at least one image");
  const int64_t channels = dataset.image_dims.at(0);
  const int64_t plane = dataset.image_elements() / channels;
  std::vector<double> sum(channels, 0.0), sum_squares(channels, 0.0);
  for (int64_t i = 0; i < dataset.size(); ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      const float* values = dataset.images.data() + (i * channels + c) * plane;
      double s = 0.0, s2 = 0.0;
      for (int64_t p = 0; p < plane; ++p) {
        s += values[p];
        s2 += static_cast<double>(values[p]) * values[p];
      }
      sum[c] += s;
      sum_squares[c] += s2;
    }
  }
  Normalization out;
  const double n = static_cast<double>(dataset.size() * plane);
  for (int64_t c = 0; c < channels; ++c) {
    double mean = sum[c] / n;
    double stddev = std::sqrt(std::max(0.0, sum_squares[c] / n - mean * mean));
    out.mean.push_back(static_cast<float>(mean));
    out.stddev.push_back(stddev > kConstantChannel ? static_cast<float>(stddev) : 1.0f);
  }
  return out;
}

}  // namespace baton
