// Tests of the data set readers: IDX (gzipped and plain) and CIFAR-10 files written to a temporary
// folder are read back value by value, every corruption gives its one-sentence error naming the file,
// and the real Fashion-MNIST files are checked when Debian's dataset-fashion-mnist is installed.
// Hostile files (issue 12): a small gzip file announcing huge images, files shorter or longer than
// their headers, headers and synthetic sizes whose products overflow, a directory, a FIFO or a device
// given as a data file: each is refused in one sentence before any large allocation, and never hangs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <initializer_list>
#include <iostream>
#include <limits>

#include "runtime/data/dataset.hpp"
#include "runtime/base/error.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

void put_big_endian32(Bytes& bytes, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(value >> shift));
}

uint8_t pattern_byte(int64_t i) { return static_cast<uint8_t>((i * 37 + 11) % 256); }

Bytes idx_images(uint32_t count, uint32_t rows, uint32_t cols, uint32_t magic = 0x00000803) {
  Bytes bytes;
  for (uint32_t value : {magic, count, rows, cols}) put_big_endian32(bytes, value);
  for (int64_t i = 0; i < int64_t{count} * rows * cols; ++i) bytes.push_back(pattern_byte(i));
  return bytes;
}

Bytes idx_labels(const Bytes& labels) {
  Bytes bytes;
  put_big_endian32(bytes, 0x00000801);
  put_big_endian32(bytes, static_cast<uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

Bytes cut(Bytes bytes, size_t drop) {
  bytes.erase(bytes.end() - static_cast<std::ptrdiff_t>(drop), bytes.end());
  return bytes;
}

// CIFAR-10 records: label (record * 3) % 10, pixels a pattern of (file, record, position).
uint8_t cifar_pixel(int file, int64_t record, int64_t position) {
  return static_cast<uint8_t>((file * 71 + record * 13 + position * 7) % 256);
}

Bytes cifar_records(int file, int64_t records) {
  Bytes bytes;
  for (int64_t r = 0; r < records; ++r) {
    bytes.push_back(static_cast<uint8_t>((r * 3) % 10));
    for (int64_t p = 0; p < 3072; ++p) bytes.push_back(cifar_pixel(file, r, p));
  }
  return bytes;
}

// The message of the baton::Error that action throws; a test failure if it throws none.
template <class Action>
std::string error_of(Action&& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.message();
  }
  ADD_FAILURE() << "expected a baton::Error";
  return {};
}

void expect_phrases(const std::string& message, std::initializer_list<std::string> phrases) {
  for (const std::string& phrase : phrases)
    EXPECT_NE(message.find(phrase), std::string::npos) << "missing '" << phrase << "' in: " << message;
}

class DataFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::temp_directory_path() / ("baton_dataset_test_" + std::to_string(getpid()) + "_" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes bytes to dir/name, gzip-compressed when the name ends in ".gz"; returns the path.
  std::string write(const std::string& name, const Bytes& bytes) const {
    std::string target = path(name);
    if (name.ends_with(".gz")) {
      gzFile file = gzopen(target.c_str(), "wb");
      EXPECT_NE(file, nullptr);
      EXPECT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
      gzclose(file);
    } else {
      std::ofstream(target, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    return target;
  }

  DataOptions options(const std::string& name) const { return {.name = name, .dir = dir_.string()}; }

  // train: 3 images of 4x5, labels 7 0 9 (images gzipped); t10k: 2 images, labels 1 2 (labels gzipped).
  void write_small_mnist() const {
    write("train-images-idx3-ubyte.gz", idx_images(3, 4, 5));
    write("train-labels-idx1-ubyte", idx_labels({7, 0, 9}));
    write("t10k-images-idx3-ubyte", idx_images(2, 4, 5));
    write("t10k-labels-idx1-ubyte.gz", idx_labels({1, 2}));
  }

  // Gzips `header` followed by `zeros` zero bytes into dir/name (streamed: nothing that size in memory).
  std::string write_gzip_zeros(const std::string& name, const Bytes& header, int64_t zeros) const {
    std::string target = path(name);
    gzFile file = gzopen(target.c_str(), "wb9");
    EXPECT_NE(file, nullptr);
    EXPECT_EQ(gzwrite(file, header.data(), static_cast<unsigned>(header.size())), static_cast<int>(header.size()));
    const Bytes chunk(1 << 20, 0);
    for (int64_t left = zeros; left > 0; left -= static_cast<int64_t>(chunk.size())) {
      unsigned size = static_cast<unsigned>(std::min<int64_t>(left, static_cast<int64_t>(chunk.size())));
      EXPECT_EQ(gzwrite(file, chunk.data(), size), static_cast<int>(size));
    }
    gzclose(file);
    return target;
  }

  std::string idx_error(const Bytes& images, const Bytes& labels) const {
    std::string images_path = write("images.gz", images), labels_path = write("labels", labels);
    return error_of([&] { read_idx(images_path, labels_path, "small"); });
  }

  fs::path dir_;
};

TEST_F(DataFiles, ReadsGzippedAndPlainIdxValueByValue) {
  std::string images = write("images.gz", idx_images(3, 4, 5));
  std::string labels = write("labels", idx_labels({7, 0, 9}));
  Dataset data = read_idx(images, labels, "small");
  EXPECT_EQ(data.name, "small");
  EXPECT_EQ(data.image_dims, (Dims{1, 4, 5}));
  EXPECT_EQ(data.classes, 10);
  ASSERT_EQ(data.size(), 3);
  ASSERT_EQ(data.images.size(), 60u);
  for (int64_t i = 0; i < 60; ++i) EXPECT_FLOAT_EQ(data.images[i], pattern_byte(i) / 255.0f) << "pixel " << i;
  EXPECT_EQ(data.labels, (std::vector<int32_t>{7, 0, 9}));
}

TEST_F(DataFiles, LoadDataFindsGzippedAndPlainMnistFiles) {
  write_small_mnist();
  DataSplit split = load_data(options("mnist"));
  EXPECT_EQ(split.train.name, "mnist/train");
  EXPECT_EQ(split.test.name, "mnist/test");
  EXPECT_EQ(split.train.labels, (std::vector<int32_t>{7, 0, 9}));
  EXPECT_EQ(split.test.labels, (std::vector<int32_t>{1, 2}));
  ASSERT_EQ(split.test.images.size(), 40u);
  EXPECT_FLOAT_EQ(split.test.images[39], pattern_byte(39) / 255.0f);
}

TEST_F(DataFiles, WrongMagicIsNamed) {
  std::string message = idx_error(idx_images(3, 4, 5, 0x00000801), idx_labels({7, 0, 9}));
  expect_phrases(message, {path("images.gz"), "is not an IDX image file", "magic 0x00000801 instead of 0x00000803"});
}

TEST_F(DataFiles, TruncatedImagesAreNamed) {
  std::string message = idx_error(cut(idx_images(3, 4, 5), 5), idx_labels({7, 0, 9}));
  expect_phrases(message, {path("images.gz"), "is truncated", "3 images of 4x5", "ends after 71 bytes"});
}

TEST_F(DataFiles, TruncatedHeaderIsNamed) {
  std::string message = idx_error(cut(idx_images(3, 4, 5), 66), idx_labels({7, 0, 9}));
  expect_phrases(message, {path("images.gz"), "is truncated", "inside its 16-byte IDX header"});
}

TEST_F(DataFiles, TruncatedLabelsAreNamed) {
  std::string message = idx_error(idx_images(3, 4, 5), cut(idx_labels({7, 0, 9}), 1));
  expect_phrases(message, {path("labels"), "is truncated", "3 labels"});
}

TEST_F(DataFiles, CountMismatchIsNamed) {
  std::string message = idx_error(idx_images(3, 4, 5), idx_labels({7, 0}));
  expect_phrases(message, {path("labels"), "announces 2 labels", "announces 3 images", "do not belong together"});
}

TEST_F(DataFiles, LabelOutOfRangeIsNamed) {
  std::string message = idx_error(idx_images(3, 4, 5), idx_labels({7, 10, 9}));
  expect_phrases(message, {path("labels"), "has label 10 at index 1", "outside 0..9"});
}

TEST_F(DataFiles, CorruptGzipIsNamed) {
  write("whole.gz", idx_images(50, 28, 28));
  Bytes compressed(fs::file_size(path("whole.gz")));
  std::ifstream(path("whole.gz"), std::ios::binary).read(reinterpret_cast<char*>(compressed.data()), compressed.size());
  std::string images = write("cut-images", cut(compressed, compressed.size() / 2));
  std::string labels = write("labels", idx_labels(Bytes(50, 1)));
  std::string message = error_of([&] { read_idx(images, labels, "small"); });
  expect_phrases(message, {images, "could not be decompressed", "may be corrupt"});
}

TEST_F(DataFiles, MissingDirectoryNamesTheFlagAndThePackage) {
  DataOptions missing{.name = "fashion-mnist", .dir = path("nowhere")};
  std::string message = error_of([&] { load_data(missing); });
  expect_phrases(message, {"data directory '" + path("nowhere") + "' does not exist", "--data-dir",
                           "apt-get install dataset-fashion-mnist"});
  expect_phrases(error_of([&] { load_data({.name = "mnist"}); }), {"no data directory given for 'mnist'"});
}

TEST_F(DataFiles, MissingFileIsNamed) {
  write_small_mnist();
  fs::remove(path("t10k-labels-idx1-ubyte.gz"));
  std::string message = error_of([&] { load_data(options("mnist")); });
  expect_phrases(message, {"neither '" + path("t10k-labels-idx1-ubyte") + "' nor", "--data-dir"});
}

TEST_F(DataFiles, MismatchedTrainAndTestDimsAreNamed) {
  write_small_mnist();
  write("t10k-images-idx3-ubyte", idx_images(2, 5, 4));
  expect_phrases(error_of([&] { load_data(options("mnist")); }), {"1x5x4", "1x4x5", "mixes two data sets"});
}

TEST(Dataset, UnknownNameListsTheValidOnes) {
  std::string message = error_of([] { load_data({.name = "imagenet"}); });
  expect_phrases(message, {"unknown dataset 'imagenet'", "fashion-mnist, mnist, cifar10, synthetic"});
  EXPECT_EQ(dataset_names().size(), 4u);
}

TEST_F(DataFiles, ReadsCifar10BatchesValueByValue) {
  for (int file = 1; file <= 5; ++file) write("data_batch_" + std::to_string(file) + ".bin", cifar_records(file, file));
  write("test_batch.bin", cifar_records(0, 2));
  DataSplit split = load_data(options("cifar10"));
  EXPECT_EQ(split.train.image_dims, (Dims{3, 32, 32}));
  EXPECT_EQ(split.train.classes, 10);
  ASSERT_EQ(split.train.size(), 15);
  ASSERT_EQ(split.test.size(), 2);
  ASSERT_EQ(split.train.images.size(), 15u * 3072u);
  int64_t sample = 0;
  for (int file = 1; file <= 5; ++file) {
    for (int64_t record = 0; record < file; ++record, ++sample) {
      EXPECT_EQ(split.train.labels[sample], (record * 3) % 10);
      for (int64_t p = 0; p < 3072; ++p)
        ASSERT_FLOAT_EQ(split.train.images[sample * 3072 + p], cifar_pixel(file, record, p) / 255.0f)
            << "file " << file << " record " << record << " position " << p;
    }
  }
  EXPECT_EQ(split.test.labels, (std::vector<int32_t>{0, 3}));
}

TEST_F(DataFiles, Cifar10SizeNotAMultipleOfTheRecordIsNamed) {
  std::string bad = write("bad.bin", cut(cifar_records(1, 2), 1));
  expect_phrases(error_of([&] { read_cifar10_batches({bad}, "c"); }),
                 {bad, "holds 6145 bytes", "not a positive multiple of the 3073-byte"});
  std::string empty = write("empty.bin", {});
  expect_phrases(error_of([&] { read_cifar10_batches({empty}, "c"); }), {empty, "holds 0 bytes"});
}

TEST_F(DataFiles, Cifar10LabelOutOfRangeIsNamed) {
  Bytes bytes = cifar_records(1, 3);
  bytes[3073] = 10;
  std::string bad = write("bad.bin", bytes);
  expect_phrases(error_of([&] { read_cifar10_batches({bad}, "c"); }), {bad, "has label 10 in record 1"});
}

TEST_F(DataFiles, Cifar10MissingBatchIsNamed) {
  for (int file = 1; file <= 4; ++file) write("data_batch_" + std::to_string(file) + ".bin", cifar_records(file, 1));
  write("test_batch.bin", cifar_records(0, 1));
  expect_phrases(error_of([&] { load_data(options("cifar10")); }),
                 {path("data_batch_5.bin"), "CIFAR-10 binary version", "--data-dir"});
}

TEST(Synthetic, IsDeterministicInRangeAndSplitsDisjointly) {
  DataOptions options{.name = "synthetic", .synthetic_dims = {3, 4, 5}, .synthetic_classes = 7,
                      .synthetic_train = 40, .synthetic_test = 10, .seed = 42};
  DataSplit first = load_data(options), again = load_data(options);
  EXPECT_EQ(first.train.images, again.train.images);
  EXPECT_EQ(first.train.labels, again.train.labels);
  EXPECT_EQ(first.train.image_dims, (Dims{3, 4, 5}));
  EXPECT_EQ(first.train.classes, 7);
  ASSERT_EQ(first.train.size(), 40);
  ASSERT_EQ(first.test.size(), 10);
  for (float value : first.train.images) ASSERT_TRUE(value >= 0.0f && value < 1.0f) << value;
  for (int32_t label : first.train.labels) ASSERT_TRUE(label >= 0 && label < 7) << label;
  Dataset tail = make_synthetic({3, 4, 5}, 7, 10, 42, "t", 40);
  EXPECT_EQ(tail.images, first.test.images);
  EXPECT_NE(std::vector<float>(first.train.images.begin(), first.train.images.begin() + 600), first.test.images);
  options.seed = 43;
  EXPECT_NE(load_data(options).train.images, first.train.images);
}

// --pad: each image in the middle of a zero frame, value for value; labels and order unchanged.
TEST(Padding, PutsEveryImageInAZeroFrame) {
  DataOptions options{.name = "synthetic", .synthetic_dims = {2, 3, 4}, .synthetic_classes = 5,
                      .synthetic_train = 6, .synthetic_test = 2, .seed = 7};
  const DataSplit plain = load_data(options);
  options.pad = 2;
  const DataSplit padded = load_data(options);
  EXPECT_EQ(padded.train.image_dims, (Dims{2, 7, 8}));
  EXPECT_EQ(padded.train.labels, plain.train.labels);
  EXPECT_EQ(padded.test.size(), 2);
  int64_t frame_nonzero = 0, mismatches = 0;
  for (int64_t plane = 0; plane < 6 * 2; ++plane)
    for (int64_t y = 0; y < 7; ++y)
      for (int64_t x = 0; x < 8; ++x) {
        const float value = padded.train.images[size_t((plane * 7 + y) * 8 + x)];
        const bool inside = y >= 2 && y < 5 && x >= 2 && x < 6;
        if (!inside) frame_nonzero += value != 0.0f;
        if (inside) mismatches += value != plain.train.images[size_t((plane * 3 + y - 2) * 4 + x - 2)];
      }
  EXPECT_EQ(frame_nonzero, 0);
  EXPECT_EQ(mismatches, 0);
}

TEST(Padding, PaddedSetsOverTheLimitAreRefusedByName) {
  DataOptions options{.name = "synthetic", .synthetic_dims = {1, 4, 4}, .synthetic_classes = 2,
                      .synthetic_train = 10, .synthetic_test = 10, .seed = 1};
  options.max_bytes = 2000;  // 20 images of 16 values: 1360 bytes; padded by 2 to 8x8: 5200
  EXPECT_EQ(load_data(options).train.size(), 10);
  options.pad = 2;
  const std::string message = error_of([&] { load_data(options); });
  EXPECT_NE(message.find("--pad 2"), std::string::npos) << message;
  EXPECT_NE(message.find("1x8x8"), std::string::npos) << message;
}

// A nearest-class-mean classifier fitted on the training set must score well on the test set.
TEST(Synthetic, LabelsAreLearnable) {
  const int classes = 10;
  const int64_t elements = 64;
  Dataset train = make_synthetic({1, 8, 8}, classes, 2000, 5, "train");
  Dataset test = make_synthetic({1, 8, 8}, classes, 500, 5, "test", 2000);
  std::vector<double> centroid(classes * elements, 0.0);
  std::vector<int> members(classes, 0);
  for (int64_t i = 0; i < train.size(); ++i) {
    ++members[train.labels[i]];
    for (int64_t e = 0; e < elements; ++e) centroid[train.labels[i] * elements + e] += train.images[i * elements + e];
  }
  for (int c = 0; c < classes; ++c) {
    ASSERT_GT(members[c], 100) << "class " << c << " is nearly empty";
    for (int64_t e = 0; e < elements; ++e) centroid[c * elements + e] /= members[c];
  }
  int correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    int best = 0;
    double best_distance = 1e300;
    for (int c = 0; c < classes; ++c) {
      double distance = 0.0;
      for (int64_t e = 0; e < elements; ++e) distance += std::pow(test.images[i * elements + e] - centroid[c * elements + e], 2);
      if (distance < best_distance) {
        best = c;
        best_distance = distance;
      }
    }
    correct += best == test.labels[i];
  }
  EXPECT_GT(correct, 450) << "of 500";
}

TEST(Synthetic, BadOptionsAreNamed) {
  expect_phrases(error_of([] { make_synthetic({3, 32}, 10, 5, 0, "s"); }), {"three sizes {C,H,W}", "3x32"});
  expect_phrases(error_of([] { make_synthetic({1, 2, 2}, 1, 5, 0, "s"); }), {"at least 2 classes"});
  expect_phrases(error_of([] { load_data({.name = "synthetic", .synthetic_dims = {1, 2, 2}}); }),
                 {"at least 1 training sample"});
}

TEST(ChannelStatistics, MatchesHandComputedValues) {
  // Two images of 2 channels x 1x2: channel 0 holds 0, 1, 1, 0; channel 1 is constant 0.5.
  Dataset data{.name = "tiny", .image_dims = {2, 1, 2}, .classes = 2,
               .images = {0.0f, 1.0f, 0.5f, 0.5f, 1.0f, 0.0f, 0.5f, 0.5f}, .labels = {0, 1}};
  Normalization stats = channel_statistics(data);
  ASSERT_EQ(stats.mean.size(), 2u);
  EXPECT_NEAR(stats.mean[0], 0.5f, 1e-6);
  EXPECT_NEAR(stats.stddev[0], 0.5f, 1e-6);
  EXPECT_NEAR(stats.mean[1], 0.5f, 1e-6);
  EXPECT_EQ(stats.stddev[1], 1.0f) << "a constant channel keeps stddev 1";
  expect_phrases(error_of([] { channel_statistics(Dataset{.name = "none", .image_dims = {1, 1, 1}}); }),
                 {"empty data set 'none'"});
}

// ---- hostile files and sizes (issue 12) -----------------------------------------------------------

Bytes header_only(std::initializer_list<uint32_t> values) {
  Bytes bytes;
  for (uint32_t value : values) put_big_endian32(bytes, value);
  return bytes;
}

// The reproducer: 64 images of 1024x1024, all zeros, gzip to about 65 KB; as floats with their
// labels they claim 268435712 bytes. A limit below that refuses them before any image is allocated.
TEST_F(DataFiles, SmallGzipFileAnnouncingHugeImagesIsRefusedByTheLimit) {
  const int64_t pixels = int64_t{64} * 1024 * 1024;
  std::string images = write_gzip_zeros("images.gz", header_only({0x803, 64, 1024, 1024}), pixels);
  EXPECT_LT(fs::file_size(images), 70000u) << "the reproducer is a small file";
  std::string labels = write("labels", idx_labels(Bytes(64, 3)));
  std::string message = error_of([&] { read_idx(images, labels, "huge", int64_t{64} << 20); });
  expect_phrases(message, {images, "announces 64 images of 1024x1024", "268435712 bytes (256 MiB)",
                           "67108864 bytes (64 MiB) limit", "--max-memory"});
  // The same files as a data directory, through load_data and DataOptions::max_bytes.
  fs::rename(images, path("train-images-idx3-ubyte.gz"));
  fs::rename(labels, path("train-labels-idx1-ubyte"));
  write("t10k-images-idx3-ubyte", idx_images(2, 4, 5));
  write("t10k-labels-idx1-ubyte", idx_labels({1, 2}));
  DataOptions limited = options("mnist");
  limited.max_bytes = int64_t{100} << 20;
  expect_phrases(error_of([&] { load_data(limited); }),
                 {path("train-images-idx3-ubyte.gz"), "268435712 bytes", "104857600 bytes (100 MiB) limit"});
}

// Training and test sets are limited together: each fits, both do not; both files are named.
TEST_F(DataFiles, LimitCoversTrainingAndTestSetsTogether) {
  write_small_mnist();  // 3 + 2 images of 4x5: 3*84 = 252 and 2*84 = 168 bytes
  DataOptions limited = options("mnist");
  limited.max_bytes = 300;
  expect_phrases(error_of([&] { load_data(limited); }),
                 {path("train-images-idx3-ubyte.gz"), path("t10k-images-idx3-ubyte"), "420 bytes", "300 bytes limit"});
  limited.max_bytes = 420;
  EXPECT_EQ(load_data(limited).test.size(), 2);
  limited.max_bytes = 0;  // no limit
  EXPECT_EQ(load_data(limited).train.size(), 3);
}

// A gzip file cannot decompress to more than 1032 times its size: a header announcing more than
// that is a truncated file, refused before the announced images are allocated (no limit set).
TEST_F(DataFiles, GzipFileTooSmallForItsAnnouncementIsTruncated) {
  std::string images = write("images.gz", header_only({0x803, 60000, 32768, 32768}));
  std::string labels = write("labels", idx_labels({1}));
  expect_phrases(error_of([&] { read_idx(images, labels, "small", 0); }),
                 {images, "is truncated", "60000 images of 32768x32768", "decompresses to at most"});
}

TEST_F(DataFiles, GzipFileShorterThanAnnouncedIsTruncated) {
  // 1000 images of 28x28 announced, 100 of noise present (which does not compress, so the gzip file
  // is large enough to hold the announcement): the stream ends early.
  Bytes bytes = header_only({0x803, 1000, 28, 28});
  uint32_t noise = 12345;
  for (int i = 0; i < 100 * 784; ++i) bytes.push_back(static_cast<uint8_t>((noise = noise * 1664525u + 1013904223u) >> 24));
  std::string images = write("images.gz", bytes);
  std::string labels = write("labels", idx_labels(Bytes(1000, 1)));
  expect_phrases(error_of([&] { read_idx(images, labels, "small", 0); }),
                 {images, "is truncated", "1000 images of 28x28 (784016 bytes)", "ends after 78416 bytes"});
}

TEST_F(DataFiles, FilesLongerThanAnnouncedAreRefused) {
  Bytes images = idx_images(3, 4, 5);
  images.push_back(0);
  expect_phrases(idx_error(images, idx_labels({7, 0, 9})),
                 {path("images.gz"), "is longer than its header announces", "3 images of 4x5 (76 bytes)",
                  "more bytes follow"});
  std::string plain = write("plain-images", images), labels = write("labels", idx_labels({7, 0, 9}));
  expect_phrases(error_of([&] { read_idx(plain, labels, "small"); }),
                 {plain, "is longer than its header announces", "the file holds 77 bytes"});
  Bytes long_labels = idx_labels({7, 0, 9});
  long_labels.push_back(1);
  expect_phrases(idx_error(idx_images(3, 4, 5), long_labels), {path("labels"), "is longer", "3 labels (11 bytes)"});
}

// A gzip bomb behind a small header: 1 image announced, 64 MiB of zeros following. Reading stops at
// the first byte past the announced ones (before, the whole file was decompressed into memory).
TEST_F(DataFiles, GzipBombBehindASmallHeaderIsRefused) {
  std::string images = write_gzip_zeros("images.gz", header_only({0x803, 1, 4, 5}), int64_t{64} << 20);
  std::string labels = write("labels", idx_labels({1}));
  expect_phrases(error_of([&] { read_idx(images, labels, "small", 0); }),
                 {images, "is longer than its header announces", "1 images of 4x5 (36 bytes)"});
}

// Sizes a header announces whose memory as floats overflows int64: 2^32-1 images of 32768x32768.
TEST_F(DataFiles, HeaderWhoseSizeOverflowsIsRefusedByName) {
  std::string images = write("images", header_only({0x803, 0xffffffffu, 32768, 32768}));
  std::string labels = write("labels", idx_labels({1}));
  expect_phrases(error_of([&] { read_idx(images, labels, "small", 0); }),
                 {images, "announces 4294967295 images of 32768x32768", "overflows 64 bits"});
  EXPECT_EQ(data_bytes(int64_t{1} << 40, int64_t{1} << 30), -1);
  EXPECT_EQ(data_bytes(3, 20), 3 * 20 * 4 + 3 * 4);
}

TEST_F(DataFiles, ZeroImagesAreRefused) {
  expect_phrases(idx_error(idx_images(0, 4, 5), idx_labels({})), {path("images.gz"), "announces 0 images"});
  expect_phrases(idx_error(idx_images(1, 4, 5), idx_labels({})), {path("labels"), "announces 0 labels"});
}

TEST_F(DataFiles, DirectoryGivenAsADataFileIsNamed) {
  fs::create_directories(path("images-dir"));
  std::string labels = write("labels", idx_labels({7, 0, 9}));
  expect_phrases(error_of([&] { read_idx(path("images-dir"), labels, "small"); }),
                 {path("images-dir"), "is a directory, not an IDX image file"});
  // In a data directory: the reader names it instead of saying that neither file exists.
  write_small_mnist();
  fs::remove(path("t10k-labels-idx1-ubyte.gz"));
  fs::create_directories(path("t10k-labels-idx1-ubyte"));
  expect_phrases(error_of([&] { load_data(options("mnist")); }),
                 {path("t10k-labels-idx1-ubyte") + "' is a directory, not an IDX label file"});
  expect_phrases(error_of([&] { read_cifar10_batches({path("images-dir")}, "c"); }),
                 {"is a directory, not a CIFAR-10 batch file"});
}

// A FIFO given as a data file is refused at once; reading it would block until a writer came. If
// the reader does block, the test opens the FIFO for writing to free it, and fails.
TEST_F(DataFiles, FifoGivenAsADataFileIsRefusedWithoutBlocking) {
  std::string fifo = path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string labels = write("labels", idx_labels({7}));
  auto reading = std::async(std::launch::async, [&] { return error_of([&] { read_idx(fifo, labels, "small"); }); });
  if (reading.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "read_idx blocked on a FIFO for 10 s";
    int writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (writer >= 0) ::close(writer);
  }
  expect_phrases(reading.get(), {fifo, "is a FIFO, not a regular file"});
  // In a data directory, as the training images.
  write_small_mnist();
  fs::remove(path("train-images-idx3-ubyte.gz"));
  ASSERT_EQ(::mkfifo(path("train-images-idx3-ubyte").c_str(), 0600), 0);
  auto loading = std::async(std::launch::async, [&] { return error_of([&] { load_data(options("mnist")); }); });
  if (loading.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "load_data blocked on a FIFO for 10 s";
    int writer = ::open(path("train-images-idx3-ubyte").c_str(), O_WRONLY | O_NONBLOCK);
    if (writer >= 0) ::close(writer);
  }
  expect_phrases(loading.get(), {path("train-images-idx3-ubyte") + "' is a FIFO, not a regular file"});
}

TEST_F(DataFiles, DeviceAndDanglingLinkAreNamed) {
  std::string labels = write("labels", idx_labels({7}));
  expect_phrases(error_of([&] { read_idx("/dev/null", labels, "small"); }),
                 {"'/dev/null' is a character device, not a regular file"});
  fs::create_symlink(path("gone"), path("link"));
  expect_phrases(error_of([&] { read_idx(path("link"), labels, "small"); }),
                 {path("link"), "is a symbolic link to a file that does not exist"});
  expect_phrases(error_of([&] { read_idx(path("absent"), labels, "small"); }), {path("absent"), "does not exist"});
  std::string file = write("not-a-dir", {1});
  expect_phrases(error_of([&] { load_data({.name = "mnist", .dir = file}); }),
                 {"data directory '" + file + "' is not a directory"});
}

TEST_F(DataFiles, Cifar10OverTheLimitIsRefused) {
  const int64_t record = 3072 * 4 + 4;
  // Plain: refused by its size before it is read.
  std::string plain = write("plain.bin", cifar_records(1, 3));
  expect_phrases(error_of([&] { read_cifar10_batches({plain}, "c", 2 * record); }),
                 {plain, "holds 3 records", "36876 bytes", "24584 bytes (24 KiB) limit", "--max-memory"});
  EXPECT_EQ(read_cifar10_batches({plain}, "c", 3 * record).size(), 3);
  // Gzipped: refused as soon as it decompresses past the limit.
  std::string gzipped = write("gzipped.bin.gz", cifar_records(1, 3));
  expect_phrases(error_of([&] { read_cifar10_batches({gzipped}, "c", 2 * record); }),
                 {gzipped, "holds at least 3 records", "24584 bytes (24 KiB) limit"});
  Dataset read = read_cifar10_batches({gzipped}, "c", 3 * record);
  ASSERT_EQ(read.size(), 3);
  EXPECT_FLOAT_EQ(read.images[3072 + 5], cifar_pixel(1, 1, 5) / 255.0f);
  std::string cut_gzip = write("cut.bin.gz", cut(cifar_records(1, 2), 1));
  expect_phrases(error_of([&] { read_cifar10_batches({cut_gzip}, "c"); }), {cut_gzip, "holds 6145 bytes"});
  // A data directory: the six files together.
  for (int file = 1; file <= 5; ++file) write("data_batch_" + std::to_string(file) + ".bin", cifar_records(file, 1));
  write("test_batch.bin", cifar_records(0, 1));
  DataOptions limited = options("cifar10");
  limited.max_bytes = 5 * record;
  expect_phrases(error_of([&] { load_data(limited); }), {"hold 6 records", "73752 bytes", "61460 bytes (60 KiB) limit"});
  limited.max_bytes = 6 * record;
  EXPECT_EQ(load_data(limited).train.size(), 5);
}

// Synthetic sizes: products that overflow int64 are refused by name (before, classes * elements was
// signed overflow), and sets over the limit are refused naming the options.
TEST(Synthetic, SizesThatOverflowAreRefusedByName) {
  expect_phrases(error_of([] { make_synthetic({1 << 22, 1 << 22, 1 << 22}, 10, 1, 0, "s", 0, 0); }),
                 {"4194304x4194304x4194304", "more values than 64 bits can count"});
  expect_phrases(error_of([] { make_synthetic({1, 100000, 100000}, 1000000000, 1, 0, "s", 0, 0); }),
                 {"1000000000 classes", "more bytes than 64 bits can count"});
  expect_phrases(error_of([] { make_synthetic({100000, 100000, 100000}, 10, 4096, 0, "s", 0, 0); }),
                 {"4096 images of 100000x100000x100000", "more bytes than 64 bits can count"});
  const int64_t huge = std::numeric_limits<int64_t>::max();
  expect_phrases(error_of([&] { make_synthetic({1, 2, 2}, 10, 5, 0, "s", huge - 2, 0); }), {"overflows 64 bits"});
  expect_phrases(error_of([&] {
                   load_data({.name = "synthetic", .synthetic_dims = {1, 2, 2}, .synthetic_train = huge,
                              .synthetic_test = huge, .max_bytes = 0});
                 }),
                 {"--train-size", "--test-size", "overflows 64 bits"});
}

TEST(Synthetic, SetsOverTheLimitAreRefusedNamingTheOptions) {
  const int64_t gib = int64_t{1} << 30;
  auto refused = [&](DataOptions o) { return error_of([&] { load_data(o); }); };
  expect_phrases(refused({.name = "synthetic", .synthetic_dims = {1, 28, 28}, .synthetic_train = 1000000000000,
                          .synthetic_test = 1024, .max_bytes = gib}),
                 {"--train-size 1000000000000", "1073741824 bytes (1.0 GiB) limit", "--max-memory"});
  expect_phrases(refused({.name = "synthetic", .synthetic_dims = {1, 100000, 100000}, .synthetic_train = 4096,
                          .synthetic_test = 1024, .max_bytes = gib}),
                 {"--input-shape 1x100000x100000", "limit"});
  expect_phrases(refused({.name = "synthetic", .synthetic_dims = {1, 28, 28}, .synthetic_classes = 1000000000,
                          .synthetic_train = 10, .synthetic_test = 1, .max_bytes = gib}),
                 {"--classes 1000000000", "class prototypes", "limit"});
  expect_phrases(error_of([&] { make_synthetic({3, 32, 32}, 10, 1000000000, 0, "synthetic", 0, gib); }),
                 {"'synthetic' of 1000000000 images of 3x32x32", "limit"});
  // Just within the limit: 10 images of 1x2x2 and 2 prototypes = 10*16 + 10*4 + 2*16 = 232 bytes.
  EXPECT_EQ(make_synthetic({1, 2, 2}, 2, 10, 0, "s", 0, 232).size(), 10);
  expect_phrases(error_of([&] { make_synthetic({1, 2, 2}, 2, 10, 0, "s", 0, 231); }), {"232 bytes", "231 bytes limit"});
}

TEST(Dataset, DefaultLimitIsHalfOfMemoryAndAtLeastOneGiB) {
  const int64_t physical = int64_t{::sysconf(_SC_PHYS_PAGES)} * ::sysconf(_SC_PAGESIZE);
  EXPECT_GE(default_max_data_bytes(), int64_t{1} << 30);
  if (physical >= (int64_t{2} << 30)) {
    EXPECT_LE(default_max_data_bytes(), physical / 2);
  }
  EXPECT_EQ(DataOptions{}.max_bytes, default_max_data_bytes());
  std::cout << "default data limit: " << default_max_data_bytes() << " bytes of " << physical << " physical\n";
}

TEST(FashionMnist, RealFilesLoadWithTheirPublishedSizes) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " is absent (Debian: apt-get install dataset-fashion-mnist)";
  auto start = std::chrono::steady_clock::now();
  DataSplit split = load_data({.name = "fashion-mnist", .dir = dir});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "loaded Fashion-MNIST in " << seconds << " s\n";
  EXPECT_EQ(split.train.image_dims, (Dims{1, 28, 28}));
  ASSERT_EQ(split.train.size(), 60000);
  ASSERT_EQ(split.test.size(), 10000);
  ASSERT_EQ(split.train.images.size(), 60000u * 784u);
  std::vector<int> train_histogram(10, 0), test_histogram(10, 0);
  for (int32_t label : split.train.labels) ++train_histogram[label];
  for (int32_t label : split.test.labels) ++test_histogram[label];
  EXPECT_EQ(train_histogram, std::vector<int>(10, 6000));
  EXPECT_EQ(test_histogram, std::vector<int>(10, 1000));
  Normalization stats = channel_statistics(split.train);
  EXPECT_NEAR(stats.mean[0], 0.286, 0.01);  // the commonly quoted Fashion-MNIST statistics
  EXPECT_NEAR(stats.stddev[0], 0.353, 0.01);
}

}  // namespace
}  // namespace baton
