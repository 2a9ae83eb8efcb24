// `baton` under mpirun: the benchmark prints one JSON line for the whole job from rank 0, and a
// job whose size does not match the grid ends with the same sentence on every rank.
#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/run.hpp"

namespace baton {
namespace {

using test::mpirun_command;

TEST(MpiCli, BenchPrintsOneLineForTheWholeJob) {
  for (const std::string& mode : {std::string("--replicas 2 --dp delayed"), std::string("--stages 2 --pipeline stale")}) {
    test::RunResult r = test::run_command(
        mpirun_command(2, "bench --model lenet5 --batch-size 32 --iterations 3 --repeats 2 --warmup 1 " + mode), 120);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    std::string line, last;
    int count = 0;
    while (std::getline(lines, line))
      if (!line.empty()) ++count, last = line;
    EXPECT_EQ(count, 1) << r.out;
    nlohmann::json result = nlohmann::json::parse(last);
    std::printf("  %s\n", last.c_str());
    EXPECT_EQ(result.at("processes"), 2);
    EXPECT_GT(result.at("images_per_sec").get<double>(), 0.0);
  }
}

TEST(MpiCli, AJobOfTheWrongSizeFailsOnEveryRankWithOneSentence) {
  test::RunResult r = test::run_command(mpirun_command(3, "train --dataset synthetic --stages 2 --pipeline stale"), 60);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "the job hung";
  EXPECT_NE(r.err.find("make 2 ranks, but this job has 3; start it with mpirun -n 2"), std::string::npos) << r.err;
}

TEST(MpiCli, EmulateRefusesToRunUnderSeveralProcesses) {
  test::RunResult r = test::run_command(mpirun_command(2, "train --dataset synthetic --stages 2 --pipeline stale --emulate"), 60);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("start it without mpirun"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace baton
