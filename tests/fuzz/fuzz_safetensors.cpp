// libFuzzer target: the checkpoint tensor reader, baton::SafetensorsFile (the files of a checkpoint,
// --init-from and export). Input: the file. Every tensor it lists is then read out by name.
// Expected: the tensors or a baton::Error; anything else is a finding.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "runtime/base/error.hpp"
#include "runtime/base/safetensors.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = baton::fuzz::scratch().file("fuzz.safetensors");
  baton::fuzz::write_file(path, {data, size});
  try {
    baton::SafetensorsFile file(path);
    for (const auto& [name, entry] : file.tensors()) {
      const std::span<const std::byte> bytes = file.bytes(name);
      if (bytes.size() != entry.end - entry.begin) std::abort();
      // Storage of at least one value, so that an empty tensor is read into an empty span that
      // points somewhere, as the trainer's slices of its weights do (read's memcpy of 0 bytes into a
      // null pointer would be the harness's undefined behaviour, not the reader's).
      if (entry.dtype == baton::DType::f32) {
        std::vector<float> values(std::max<size_t>(bytes.size() / sizeof(float), 1));
        file.read(name, std::span<float>(values.data(), bytes.size() / sizeof(float)));
      } else {
        std::vector<int64_t> values(std::max<size_t>(bytes.size() / sizeof(int64_t), 1));
        file.read(name, std::span<int64_t>(values.data(), bytes.size() / sizeof(int64_t)));
      }
    }
    for (const auto& [key, value] : file.metadata()) (void)key, (void)value;
  } catch (const baton::Error&) {
    // A refused file: what the reader is for.
  }
  return 0;
}
