// libFuzzer target: the checkpoint manifest reader, baton::read_manifest (--resume, export). Input:
// the text of manifest.json, written into a scratch checkpoint folder.
// Expected: a manifest, a baton::Error, or a nlohmann::json exception for a manifest whose values
// have other types than it checks ({"format": 22}): every caller reaches read_manifest through
// problem_with() in checkpoint.cpp, which turns those into a sentence. Anything else is a finding.
#include <cstdint>
#include <filesystem>

#include "runtime/app/checkpoint.hpp"
#include "runtime/base/error.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string folder = baton::fuzz::scratch().file("step-00000001");
  std::filesystem::create_directories(folder);
  baton::fuzz::write_file(folder + "/manifest.json", {data, size});
  try {
    nlohmann::json manifest = baton::read_manifest(folder);
    (void)manifest;
  } catch (const baton::Error&) {
    // A refused manifest: what the reader is for.
  } catch (const nlohmann::json::exception&) {
    // See above: the callers' problem_with() names it.
  }
  return 0;
}
