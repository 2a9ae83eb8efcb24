// libFuzzer target: the CIFAR-10 binary reader, through read_cifar10_batches and through load_data
// over a folder of the six batch files, under a 64 MiB limit on the data's memory.
//
// Input: one flags byte, then the batch file.
//   flags bit 0: gzip the file here (the input may also hold gzip bytes itself);
//   bit 1: read with load_data from a folder whose six files all hold these bytes;
//   bit 2: (read_cifar10_batches) pass the file twice, so records of two files are concatenated.
// Expected: a Dataset whose sizes agree, or a baton::Error; anything else is a finding.
#include <cstdint>
#include <cstdlib>

#include "runtime/base/error.hpp"
#include "runtime/data/dataset.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace {

void check(const baton::Dataset& data) {
  if (data.image_dims != baton::Dims{3, 32, 32}) std::abort();
  if (data.size() < 1 || data.images.size() != static_cast<size_t>(data.size() * 3072)) std::abort();
  for (int32_t label : data.labels)
    if (label < 0 || label >= 10) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const baton::fuzz::Bytes plain(data + 1, data + size);
  const baton::fuzz::Bytes file = flags & 1 ? baton::fuzz::gzip(plain) : plain;
  const auto& scratch = baton::fuzz::scratch();
  try {
    if (flags & 2) {
      const std::string dir = scratch.file("cifar");
      std::filesystem::create_directories(dir);
      for (const char* name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                               "data_batch_5.bin", "test_batch.bin"})
        baton::fuzz::write_file(dir + "/" + name, file);
      baton::DataSplit split = baton::load_data(
          baton::DataOptions{.name = "cifar10", .dir = dir, .max_bytes = baton::fuzz::kFuzzMaxDataBytes});
      check(split.train);
      check(split.test);
    } else {
      const std::string path = scratch.file("batch.bin");
      baton::fuzz::write_file(path, file);
      std::vector<std::string> paths = {path};
      if (flags & 4) paths.push_back(path);
      check(baton::read_cifar10_batches(paths, "fuzz", baton::fuzz::kFuzzMaxDataBytes));
    }
  } catch (const baton::Error&) {
    // A refused file: what the reader is for.
  }
  return 0;
}
