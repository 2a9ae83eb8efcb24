// libFuzzer target: the IDX reader (MNIST, Fashion-MNIST), through read_idx and through load_data
// over a folder of the four files, under a 64 MiB limit on the data's memory.
//
// Input: one flags byte, then the image file; the label file starts at the first label magic
// 00 00 08 01 after the image file's own 4-byte magic (none: an empty label file).
//   flags bit 0: gzip the image file here; bit 1: gzip the label file here (the input may also
//   hold gzip bytes itself); bit 2: read with load_data from a folder where the test files are the
//   training files, else with read_idx.
// Expected: a Dataset whose sizes agree, or a baton::Error. Anything else (a crash, a sanitizer
// report, another exception, an allocation over libFuzzer's limits) is a finding.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>

#include "runtime/base/error.hpp"
#include "runtime/data/dataset.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

using baton::fuzz::Bytes;

void check(const baton::Dataset& data) {
  if (data.image_dims.size() != 3) std::abort();
  if (data.images.size() != static_cast<size_t>(data.size() * data.image_elements())) std::abort();
  for (int32_t label : data.labels)
    if (label < 0 || label >= data.classes) std::abort();
  for (float value : data.images)
    if (!(value >= 0.0f && value <= 1.0f)) std::abort();
}

void write_variant(const std::string& path, const Bytes& bytes, bool gzipped) {
  baton::fuzz::write_file(path, gzipped ? baton::fuzz::gzip(bytes) : bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const uint8_t* begin = data + 1;
  const uint8_t* end = data + size;
  static constexpr std::array<uint8_t, 4> kLabelsMagic = {0x00, 0x00, 0x08, 0x01};
  const uint8_t* split = end;
  if (end - begin > 4) split = std::search(begin + 4, end, kLabelsMagic.begin(), kLabelsMagic.end());
  const Bytes images(begin, split), labels(split, end);
  const auto& scratch = baton::fuzz::scratch();
  try {
    if (flags & 4) {
      const std::string dir = scratch.file("mnist");
      std::filesystem::create_directories(dir);
      for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                               "t10k-labels-idx1-ubyte"}) {
        std::error_code ignored;
        std::filesystem::remove(dir + "/" + name, ignored);
        std::filesystem::remove(dir + "/" + name + ".gz", ignored);
      }
      for (const char* part : {"train", "t10k"}) {
        const std::string prefix = dir + "/" + part;
        write_variant(prefix + "-images-idx3-ubyte" + (flags & 1 ? ".gz" : ""), images, flags & 1);
        write_variant(prefix + "-labels-idx1-ubyte" + (flags & 2 ? ".gz" : ""), labels, flags & 2);
      }
      baton::DataOptions options{.name = "mnist", .dir = dir, .max_bytes = baton::fuzz::kFuzzMaxDataBytes};
      baton::DataSplit split_sets = baton::load_data(options);
      check(split_sets.train);
      check(split_sets.test);
    } else {
      const std::string images_path = scratch.file("images"), labels_path = scratch.file("labels");
      write_variant(images_path, images, flags & 1);
      write_variant(labels_path, labels, flags & 2);
      check(baton::read_idx(images_path, labels_path, "fuzz", baton::fuzz::kFuzzMaxDataBytes));
    }
  } catch (const baton::Error&) {
    // A refused file: what the reader is for.
  }
  return 0;
}
