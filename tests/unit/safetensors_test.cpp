// Safetensors files: what is written reads back bit for bit (header, dtypes, shapes, metadata,
// alignment), and a truncated, overlapping or otherwise corrupt file is one clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <cstring>
#include <fstream>

#include "runtime/base/error.hpp"
#include "runtime/base/safetensors.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("baton_safetensors_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A file of two float tensors (one of odd length, so the int64 one would sit misaligned after
  // it), an int64 scalar and metadata.
  std::string write_sample() {
    SafetensorsWriter writer;
    writer.add("conv.weight", std::span<const float>(weights_), {2, 3, 1, 1});
    writer.add("bn.running_var", std::span<const float>(odd_), {3});
    writer.add("bn.num_batches_tracked", std::span<const int64_t>(&tracked_, 1), {});
    writer.set_metadata("model", "sample");
    const std::string file = path("sample.safetensors");
    Written written = writer.write(file);
    EXPECT_EQ(written.bytes, int64_t(fs::file_size(file)));
    EXPECT_EQ(written.crc32, checksum_file(file).crc32);
    return file;
  }

  // The file with `bytes` written over it at `offset` (or cut to `offset` bytes when bytes is empty).
  std::string damaged(const std::string& file, size_t offset, const std::string& bytes) {
    const std::string copy = path("damaged" + std::to_string(++damaged_) + ".safetensors");
    fs::copy_file(file, copy, fs::copy_options::overwrite_existing);
    if (bytes.empty()) {
      fs::resize_file(copy, offset);
    } else {
      std::fstream out(copy, std::ios::in | std::ios::out | std::ios::binary);
      out.seekp(std::streamoff(offset));
      out.write(bytes.data(), std::streamsize(bytes.size()));
    }
    return copy;
  }

  static std::string error_of(const std::string& file) {
    try {
      SafetensorsFile read(file);
    } catch (const Error& e) {
      return e.message();
    }
    return "";
  }

  fs::path dir_;
  std::vector<float> weights_{1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
  std::vector<float> odd_{0.5f, 0.25f, 0.125f};
  int64_t tracked_ = 1234567890123;
  int damaged_ = 0;
};

TEST_F(Safetensors, WhatIsWrittenReadsBackBitForBit) {
  SafetensorsFile file(write_sample());
  EXPECT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.metadata().at("model"), "sample");
  EXPECT_EQ(file.entry("conv.weight").shape, (std::vector<int64_t>{2, 3, 1, 1}));
  EXPECT_TRUE(file.entry("bn.num_batches_tracked").shape.empty());
  std::vector<float> weights(6), odd(3);
  int64_t tracked = 0;
  file.read("conv.weight", std::span<float>(weights));
  file.read("bn.running_var", std::span<float>(odd));
  file.read("bn.num_batches_tracked", std::span<int64_t>(&tracked, 1));
  EXPECT_EQ(std::memcmp(weights.data(), weights_.data(), 6 * sizeof(float)), 0);  // -0.0 and denormals too
  EXPECT_EQ(odd, odd_);
  EXPECT_EQ(tracked, tracked_);
  // Each tensor starts aligned to its element size within the 8-byte-aligned data section.
  for (const auto& [name, entry] : file.tensors())
    EXPECT_EQ(entry.begin % (entry.dtype == DType::i64 ? 8 : 4), 0u) << name;
}

TEST_F(Safetensors, WrongDtypeOrSizeOnReadIsNamed) {
  SafetensorsFile file(write_sample());
  std::vector<int64_t> as_int(6);
  std::vector<float> too_few(2);
  EXPECT_THROW(file.read("conv.weight", std::span<int64_t>(as_int)), Error);
  EXPECT_THROW(file.read("conv.weight", std::span<float>(too_few)), Error);
  EXPECT_THROW(file.entry("absent"), Error);
}

TEST_F(Safetensors, CorruptFilesAreOneClearError) {
  const std::string good = write_sample();
  const size_t size = fs::file_size(good);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {damaged(good, 5, ""), "fewer than its 8-byte header length"},
      {damaged(good, size - 4, ""), "lies outside the file"},  // the last tensor's bytes cut off
      {damaged(good, 0, std::string("\xff\xff\xff\x7f", 4)), "its header claims"},
      {damaged(good, 8, "!"), "not JSON"},
  };
  for (const auto& [file, expected] : cases) {
    const std::string message = error_of(file);
    std::printf("  %s\n", message.c_str());
    EXPECT_NE(message.find("is not a valid safetensors file"), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  EXPECT_NE(error_of(path("missing.safetensors")).find("does not exist"), std::string::npos);
}

// Found by fuzz_safetensors: a shape entry written as a number too large for int64 (nlohmann's
// conversion was undefined behaviour), dimensions whose product overflows 64 bits (so did the
// multiplication), and a zero-element tensor read into an empty span.
TEST_F(Safetensors, FuzzFindingsStayFixed) {
  auto header_only = [&](const std::string& name, const std::string& header) {
    std::string bytes(8, '\0');
    bytes[0] = char(header.size());
    std::ofstream(path(name), std::ios::binary) << bytes << header;
    return path(name);
  };
  const std::string float_shape = error_of(
      header_only("float_shape.safetensors", R"({"e":{"dtype":"F32","shape":[0,92233720368547758070,0],"data_offsets":[0,0]}})"));
  std::printf("  %s\n", float_shape.c_str());
  EXPECT_NE(float_shape.find("not whole numbers"), std::string::npos) << float_shape;
  const std::string huge_shape = error_of(
      header_only("huge_shape.safetensors", R"({"e":{"dtype":"F32","shape":[3220,93720368547758070],"data_offsets":[0,0]}})"));
  std::printf("  %s\n", huge_shape.c_str());
  EXPECT_NE(huge_shape.find("a shape of more than 2^64 bytes"), std::string::npos) << huge_shape;
  const std::string path_of_empty =
      header_only("huge_but_empty.safetensors", R"({"e":{"dtype":"F32","shape":[3220,93720368547758070,0],"data_offsets":[0,0]}})");
  EXPECT_EQ(SafetensorsFile(path_of_empty).entry("e").end, 0u);  // a zero dimension: no values, not an overflow

  SafetensorsWriter writer;
  writer.add("empty", std::span<const float>(), {0, 3});
  writer.write(path("empty.safetensors"));
  SafetensorsFile file(path("empty.safetensors"));
  EXPECT_NO_THROW(file.read("empty", std::span<float>()));
}

TEST_F(Safetensors, AFailedWriteLeavesNoFileBehind) {
  std::vector<float> values(16, 1.0f);
  SafetensorsWriter writer;
  writer.add("w", std::span<const float>(values), {16});
  EXPECT_THROW(writer.write(path("no/such/folder/file.safetensors")), Error);
  EXPECT_THROW(writer.add("bad", std::span<const float>(values), {3, 3}), Error);  // 16 values, 9 by shape
  EXPECT_TRUE(fs::is_empty(dir_));
}

}  // namespace
}  // namespace baton
