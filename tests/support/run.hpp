// Runs the `baton` program (or any command) from a test and captures what it printed.
#pragma once

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

}  // namespace baton::test
