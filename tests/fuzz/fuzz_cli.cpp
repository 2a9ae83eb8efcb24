// libFuzzer target: the command line and INI parser, baton::parse_command_line.
//
// Input: text. Up to the first NUL byte, the arguments after "baton", one per line; after it (when
// there is a NUL), the text of an INI file, written to a scratch file and passed as --config FILE.
// Expected: an Invocation or a baton::Error; anything else (another exception, which `baton` would
// print as "internal error", a crash, a sanitizer report, a hang past -timeout) is a finding.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/app/cli.hpp"
#include "runtime/base/error.hpp"
#include "tests/fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t nul = text.find('\0');
  const std::string arguments = text.substr(0, nul);
  std::vector<std::string> args = {"baton"};
  for (size_t start = 0; start <= arguments.size() && !arguments.empty();) {
    size_t line_end = arguments.find('\n', start);
    if (line_end == std::string::npos) line_end = arguments.size();
    args.push_back(arguments.substr(start, line_end - start));
    start = line_end + 1;
  }
  if (nul != std::string::npos) {
    const std::string ini_path = baton::fuzz::scratch().file("run.ini");
    const std::string ini = text.substr(nul + 1);
    baton::fuzz::write_file(ini_path, {reinterpret_cast<const uint8_t*>(ini.data()), ini.size()});
    args.push_back("--config");
    args.push_back(ini_path);
  }
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  argv.push_back(nullptr);
  try {
    baton::Invocation invocation = baton::parse_command_line(static_cast<int>(args.size()), argv.data());
    (void)invocation;
  } catch (const baton::Error&) {
    // A refused command line: what the parser is for.
  }
  return 0;
}
