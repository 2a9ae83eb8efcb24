// Runs the `baton` program (or any command) from a test and captures what it printed, to the end or
// in the background (so that a test can signal or kill it while it works).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace baton::test {

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `command` through /bin/sh with a time limit; exit_code 124 means it timed out.
RunResult run_command(const std::string& command, int timeout_seconds = 120);

// Runs BATON_BINARY with these arguments.
RunResult run_baton(const std::string& arguments, int timeout_seconds = 120);

// The command that starts BATON_BINARY with these arguments as `ranks` MPI processes on this
// machine (as root too, one OpenMP thread each, not bound to cores).
std::string mpirun_command(int ranks, const std::string& arguments);

// A command started through /bin/sh in its own process group (`exec` in the command makes the
// program itself the group's leader); killed with its group if still running when destroyed.
class Background {
 public:
  explicit Background(const std::string& command);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  void signal(int number) const;  // to the command's process (mpirun forwards SIGUSR1 to its ranks)
  bool running();
  RunResult wait(int timeout_seconds);  // exit_code 124 if it had to be killed

 private:
  pid_t pid_;
  std::filesystem::path dir_;
  int status_ = -1;
  bool finished_ = false;
};

}  // namespace baton::test
