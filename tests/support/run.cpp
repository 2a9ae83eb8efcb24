// Implementation of run_command: the command runs under timeout(1), stdout and stderr to files.
#include "tests/support/run.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace baton::test {
namespace {
std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

RunResult run_command(const std::string& command, int timeout_seconds) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("baton_run_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path out = dir / "out", err = dir / "err";
  std::string line = "timeout " + std::to_string(timeout_seconds) + " " + command + " > " + out.string() + " 2> " +
                     err.string();
  int status = std::system(line.c_str());
  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = slurp(out);
  result.err = slurp(err);
  fs::remove_all(dir);
  return result;
}

RunResult run_baton(const std::string& arguments, int timeout_seconds) {
  return run_command(std::string(BATON_BINARY) + " " + arguments, timeout_seconds);
}

}  // namespace baton::test
