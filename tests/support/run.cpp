// Implementation of run_command (under timeout(1)) and Background (fork + exec of /bin/sh); stdout
// and stderr go to files that are read when the command ends.
#include "tests/support/run.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>
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

std::string mpirun_command(int ranks, const std::string& arguments) {
  return "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 mpirun -n " +
         std::to_string(ranks) + " --oversubscribe --bind-to none " BATON_BINARY " " + arguments;
}

namespace {
int background_count = 0;
}

Background::Background(const std::string& command)
    : dir_(std::filesystem::temp_directory_path() /
           ("baton_background_" + std::to_string(getpid()) + "_" + std::to_string(++background_count))) {
  std::filesystem::create_directories(dir_);
  const std::string line = command + " > " + (dir_ / "out").string() + " 2> " + (dir_ / "err").string();
  pid_ = fork();
  if (pid_ == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid_, pid_);
}

Background::~Background() {
  if (!finished_) {
    kill(-pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
  std::filesystem::remove_all(dir_);
}

void Background::signal(int number) const { kill(pid_, number); }

bool Background::running() {
  if (finished_) return false;
  finished_ = waitpid(pid_, &status_, WNOHANG) == pid_;
  return !finished_;
}

RunResult Background::wait(int timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  RunResult result;
  if (running()) {
    kill(-pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    finished_ = true;
    result.exit_code = 124;
  } else {
    result.exit_code = WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  result.out = slurp(dir_ / "out");
  result.err = slurp(dir_ / "err");
  return result;
}

}  // namespace baton::test
