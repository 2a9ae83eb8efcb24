// Failures under mpirun end the whole job with a message and never hang: an error on one rank,
// a rank killed from outside (SIGKILL), and a stalled rank that the others name as late.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A training run long enough to be interrupted, tagged with `marker` so the test can find its ranks.
std::string long_run(const std::string& marker, const std::string& extra) {
  return test::mpirun_command(2, "train --model lenet5 --dataset synthetic --train-size 20000 --test-size 64 "
                                 "--batch-size 32 --epochs 50 --stages 2 --pipeline stale --threads 1 --metrics " +
                                     (fs::temp_directory_path() / marker).string() + " " + extra);
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

TEST(MpiFaults, AnErrorOnOneRankEndsTheJobWithItsMessage) {
  auto start = Clock::now();
  test::RunResult r = test::run_command(
      "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -n 2 --oversubscribe --bind-to none " BATON_BINARY
      " train --model lenet5 --dataset synthetic --train-size 256 --stages 2 --pipeline stale "
      "--metrics /nonexistent/folder/m.jsonl",
      60);
  std::printf("  ended in %.1f s, exit %d:\n%s", seconds_since(start), r.exit_code, r.err.c_str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "the job hung";
  EXPECT_NE(r.err.find("baton (rank 0): cannot write the metrics file '/nonexistent/folder/m.jsonl'"), std::string::npos);
  EXPECT_LT(seconds_since(start), 30);
}

TEST(MpiFaults, ARankKilledFromOutsideEndsTheJob) {
  auto start = Clock::now();
  test::RunResult r = test::run_command(
      "bash -c '" + long_run("baton_fault_kill.jsonl", "") +
          " & job=$!; sleep 4; pkill -9 -n -f baton_fault_kill; wait $job'",
      60);
  std::printf("  ended in %.1f s, exit %d:\n%s", seconds_since(start), r.exit_code, r.err.c_str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "the job hung";
  EXPECT_NE(r.err.find("signal 9"), std::string::npos) << "mpirun should say which rank died";
  EXPECT_LT(seconds_since(start), 4 + 30);
}

TEST(MpiFaults, AStalledRankIsNamedByTheRankWaitingForIt) {
  test::RunResult r = test::run_command(
      "bash -c '" + long_run("baton_fault_stall.jsonl", "--stall-timeout 2") +
          " & job=$!; sleep 4; victim=$(pgrep -n -f baton_fault_stall); kill -STOP $victim; sleep 5; "
          "kill -9 $victim; wait $job'",
      60);
  std::printf("%s", r.err.c_str());
  EXPECT_NE(r.exit_code, 124) << "the job hung";
  EXPECT_NE(r.err.find("nothing has completed for"), std::string::npos);
  EXPECT_NE(r.err.find("is late"), std::string::npos);
}

}  // namespace
}  // namespace baton
