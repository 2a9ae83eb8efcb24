// The parallel modes from the command line: `baton schedule` shows programs and writes a trace,
// one-process runs of a pipeline, a grid and a hybrid train and write their timelines, and each
// configuration mistake ends with one sentence naming the fix.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

const char* kSynthetic = "--model lenet5 --dataset synthetic --train-size 512 --test-size 128 --batch-size 32 --epochs 2";

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

void expect_error(const std::string& args, const std::string& phrase) {
  test::RunResult r = test::run_baton(args);
  SCOPED_TRACE("baton " + args + "\nstderr: " + r.err);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_NE(r.err.find(phrase), std::string::npos) << "expected: " << phrase;
  std::printf("  baton %s\n    -> %s", args.c_str(), r.err.c_str());
}

TEST(Schedule, PrintsProgramsDelaysAndTheBubble) {
  test::RunResult r = test::run_baton("schedule --stages 4 --pipeline stale --steps 6");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("forward weight delay per stage: 3 2 1 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rank 3 (stage 3, replica 0)"), std::string::npos);
  test::RunResult gpipe = test::run_baton("schedule --stages 4 --pipeline gpipe --microbatches 4 --steps 1");
  ASSERT_EQ(gpipe.exit_code, 0) << gpipe.err;
  EXPECT_NE(gpipe.out.find("idle 42.9% 42.9% 42.9% 42.9%"), std::string::npos) << gpipe.out;  // 3 / 7
}

TEST(Schedule, WritesAUnitCostTimeline) {
  const fs::path trace = fs::temp_directory_path() / "baton_schedule_trace.json";
  test::RunResult r = test::run_baton("schedule --stages 3 --replicas 2 --pipeline gpipe --microbatches 2 --timeline " +
                                      trace.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json events = read_json(trace).at("traceEvents");
  std::set<int> ranks;
  for (const auto& e : events)
    if (e.at("ph") == "X") ranks.insert(e.at("pid").get<int>());
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2, 3, 4, 5}));
  fs::remove(trace);
}

TEST(ParallelTraining, PipelineGridAndHybridRunInOneProcessWithTimelines) {
  for (const std::string& mode : {std::string("--stages 3 --pipeline pipedream --split-backward"),
                                  std::string("--stages 2 --replicas 2 --pipeline gpipe --microbatches 2 --dp overlap"),
                                  std::string("--stages 2 --pipeline hybrid --hybrid-switch-epoch 2"),
                                  std::string("--replicas 2 --dp delayed")}) {
    SCOPED_TRACE(mode);
    const fs::path trace = fs::temp_directory_path() / "baton_train_trace.json";
    const fs::path metrics = fs::temp_directory_path() / "baton_train_metrics.jsonl";
    test::RunResult r = test::run_baton(std::string("train ") + kSynthetic + " --emulate " + mode + " --timeline " +
                                        trace.string() + " --metrics " + metrics.string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::printf("%s", r.out.c_str());
    EXPECT_NE(r.out.find("epoch 2/2"), std::string::npos);
    EXPECT_GT(read_json(trace).at("traceEvents").size(), 100u);
    std::ifstream lines(metrics);
    std::string first;
    std::getline(lines, first);
    EXPECT_EQ(nlohmann::json::parse(first).at("event"), "config");
    fs::remove(trace);
    fs::remove(metrics);
  }
}

TEST(ParallelErrors, SeveralRanksNeedMpirunOrEmulate) {
  expect_error(std::string("train ") + kSynthetic + " --stages 2 --pipeline stale",
               "need mpirun -n 2, or --emulate to run them all in this process");
}
TEST(ParallelErrors, StagesNeedAPipeline) {
  expect_error(std::string("train ") + kSynthetic + " --stages 2 --emulate", "pass --pipeline");
}
TEST(ParallelErrors, BatchMustSplitIntoReplicasAndMicrobatches) {
  expect_error(std::string("train ") + kSynthetic + " --replicas 3 --emulate", "use a multiple of 3");
}
TEST(ParallelErrors, OneForwardOneBackwardTakesOneMicrobatch) {
  expect_error(std::string("train ") + kSynthetic + " --stages 2 --pipeline stale --microbatches 2 --emulate",
               "--microbatches 1");
}
TEST(ParallelErrors, HybridTakesOneMicrobatch) {
  expect_error(std::string("train ") + kSynthetic + " --stages 2 --pipeline hybrid --microbatches 4 --emulate",
               "hybrid updates after every microbatch while stale and then trains without pipelining");
}
TEST(ParallelErrors, MoreStagesThanLayers) {
  expect_error(std::string("train ") + kSynthetic + " --stages 20 --pipeline gpipe --emulate", "20 stages");
}
TEST(ParallelErrors, PartitionAtAnUnknownLayer) {
  expect_error(std::string("train ") + kSynthetic + " --stages 2 --pipeline stale --emulate --partition layer9",
               "no layer named 'layer9'");
}
TEST(ParallelErrors, UnknownPipelineAndAveraging) {
  expect_error(std::string("train ") + kSynthetic + " --stages 2 --pipeline zigzag --emulate", "unknown pipeline");
  expect_error(std::string("train ") + kSynthetic + " --replicas 2 --dp eventually --emulate", "unknown averaging");
}

}  // namespace
}  // namespace baton
