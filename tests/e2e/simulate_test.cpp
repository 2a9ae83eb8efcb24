// `baton profile` and `baton simulate` as a user runs them: a cost file measured here, one
// configuration's prediction and timeline, 8192 ranks, the ranked search, and bad input.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

class SimulateCli : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("baton_simulate_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const test::RunResult profiled = test::run_baton("profile --model lenet5 --batch-size 32 --microbatches 1,4 "
                                                     "--repeats 2 --output " + costs());
    ASSERT_EQ(profiled.exit_code, 0) << profiled.err;
    std::printf("%s", profiled.out.c_str());
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string costs() { return (dir_ / "lenet5.json").string(); }
  static nlohmann::json last_json_line(const std::string& out) {
    std::istringstream lines(out);
    std::string line, last;
    while (std::getline(lines, line))
      if (!line.empty()) last = line;
    return nlohmann::json::parse(last);
  }
  static fs::path dir_;
};
fs::path SimulateCli::dir_;

void expect_one_line_naming(const test::RunResult& r, const std::string& words) {
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(words), std::string::npos) << r.err;
}

TEST_F(SimulateCli, TheCostFileTimesEveryLayerAtEachMicrobatchSize) {
  std::ifstream in(costs());
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("model"), "lenet5");
  ASSERT_EQ(j.at("nodes").size(), 13u);
  ASSERT_EQ(j.at("microbatches").size(), 2u);
  EXPECT_EQ(j["microbatches"][0]["images"], 8);
  EXPECT_EQ(j["microbatches"][1]["images"], 32);
  for (const nlohmann::json& size : j["microbatches"]) {
    const nlohmann::json& conv2 = size["node_seconds"][3];
    EXPECT_GT(conv2["forward"].get<double>(), 0);
    EXPECT_GT(conv2["data_gradient"].get<double>(), 0);
    EXPECT_GT(conv2["weight_gradient"].get<double>(), 0);
  }
  EXPECT_GT(j.at("optimizer_seconds_per_param").get<double>(), 0);
  EXPECT_EQ(j.at("ranks_per_node"), 1);  // measured alone
  EXPECT_GT(j.at("cores").get<int>(), 0);
}

TEST_F(SimulateCli, RanksSharingTooFewCoresAreSlower) {
  auto simulate = [&](int cores) {
    const test::RunResult r = test::run_baton("simulate --model lenet5 --batch-size 32 --costs " + costs() +
                                              " --replicas 4 --cores-per-node " + std::to_string(cores));
    std::printf("%s", r.out.c_str());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("sharing " + std::to_string(cores) + " core(s)"), std::string::npos) << r.out;
    const nlohmann::json j = last_json_line(r.out);
    const double step_ms = j.at("step_ms").get<double>();
    return std::pair{step_ms, j.at("per_stage")[0].at("busy").get<double>() * step_ms};  // and its compute
  };
  const auto [own_cores_step, own_cores_compute] = simulate(4);
  const auto [one_core_step, one_core_compute] = simulate(1);
  EXPECT_GT(one_core_step, own_cores_step);
  // 4 replicas computing at once at a quarter of the speed; the allreduce keeps its price.
  EXPECT_NEAR(one_core_compute, 4 * own_cores_compute, 1e-6 * one_core_compute);
  const test::RunResult unsaid =
      test::run_baton("simulate --model lenet5 --batch-size 32 --costs " + costs() + " --replicas 4");
  EXPECT_NE(unsaid.out.find("a core each"), std::string::npos) << unsaid.out;  // no network file, no flag
}

TEST_F(SimulateCli, PredictsAPipelineAndWritesItsTimeline) {
  const std::string timeline = (dir_ / "predicted.json").string();
  const test::RunResult r = test::run_baton("simulate --model lenet5 --batch-size 32 --costs " + costs() +
                                            " --stages 2 --pipeline gpipe --microbatches 4 --iterations 5 --timeline " +
                                            timeline);
  std::printf("%s", r.out.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = last_json_line(r.out);
  EXPECT_GT(j.at("step_ms").get<double>(), 0);
  ASSERT_EQ(j.at("per_stage").size(), 2u);
  EXPECT_GT(j.at("bubble_fraction").get<double>(), 0);  // a fill-drain pipeline has bubbles
  std::ifstream in(timeline);
  const nlohmann::json trace = nlohmann::json::parse(in);
  int boxes = 0;
  for (const nlohmann::json& event : trace.at("traceEvents")) boxes += event.value("ph", "") == "X";
  EXPECT_GT(boxes, 2 * 5 * 4 * 3);  // both ranks' passes of 5 updates of 4 microbatches, at least
}

TEST_F(SimulateCli, SimulatesEightThousandRanksWithinAMinute) {
  const test::RunResult r = test::run_baton("simulate --model lenet5 --batch-size 8192 --costs " + costs() +
                                                " --stages 4 --pipeline gpipe --microbatches 2 --replicas 2048 --dp overlap"
                                                " --ranks-per-node 32",
                                            60);
  std::printf("%s", r.out.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = last_json_line(r.out);
  EXPECT_EQ(j.at("replicas"), 2048);
  EXPECT_GT(j.at("communication_fraction").get<double>(), 0);  // 2048 replicas over 256 nodes
  EXPECT_NE(r.out.find("on 256 node(s) x 32 rank(s)"), std::string::npos);
}

TEST_F(SimulateCli, SearchRanksTheConfigurationsByThroughputWithinTheMemory) {
  const test::RunResult r = test::run_baton("simulate --model lenet5 --batch-size 32 --costs " + costs() +
                                            " --search --nodes 2 --ranks-per-node 2 --iterations 8");
  std::printf("%s", r.out.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<double> throughput;
  bool saw_pipeline = false, saw_replicas = false;
  while (std::getline(lines, line)) {
    if (line.size() < 60 || line.find("configuration") != std::string::npos) continue;
    std::istringstream fields(line.substr(63));  // after the rank and the configuration
    double step_ms = 0, images_per_sec = 0;
    fields >> step_ms >> images_per_sec;
    throughput.push_back(images_per_sec);
    saw_pipeline = saw_pipeline || line.find("4x1 gpipe") != std::string::npos;
    saw_replicas = saw_replicas || line.find("1x4 no pipeline, delayed") != std::string::npos;
  }
  ASSERT_GT(throughput.size(), 10u);
  EXPECT_TRUE(std::is_sorted(throughput.rbegin(), throughput.rend()));
  EXPECT_TRUE(saw_pipeline && saw_replicas);
  const test::RunResult tight = test::run_baton("simulate --model lenet5 --batch-size 32 --costs " + costs() +
                                                " --search --nodes 2 --ranks-per-node 2 --memory-per-rank 0.001");
  ASSERT_EQ(tight.exit_code, 0) << tight.err;
  EXPECT_EQ(tight.out.rfind("0 configuration(s) of 4 ranks", 0), 0u) << tight.out;
  EXPECT_NE(tight.out.find("need more than --memory-per-rank 0.001 GiB"), std::string::npos) << tight.out;
}

TEST_F(SimulateCli, NetworkCalibrationUnderMpirunWritesAFileSimulateReads) {
  const std::string network = (dir_ / "network.json").string();
  const test::RunResult r =
      test::run_command(test::mpirun_command(2, "profile --network --repeats 5 --output " + network), 120);
  std::printf("%s", r.out.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(network);
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_TRUE(j.at("measured").at("intra_node").get<bool>());   // both ranks on this machine
  EXPECT_FALSE(j.at("measured").at("inter_node").get<bool>());
  EXPECT_GT(j.at("intra_node").at("bandwidth_bytes_per_s").get<double>(), 0);
  EXPECT_GT(j.at("measured").at("allreduce").at("seconds").get<double>(), 0);
  EXPECT_GT(j.at("cores_per_node").get<double>(), 0);
  const test::RunResult simulated = test::run_baton("simulate --model lenet5 --batch-size 32 --costs " + costs() +
                                                    " --replicas 2 --network " + network);
  EXPECT_EQ(simulated.exit_code, 0) << simulated.err;
  expect_one_line_naming(test::run_baton("profile --network"), "start it with mpirun -n 2 or more");
}

TEST_F(SimulateCli, BadInputIsOneSentenceNamingIt) {
  expect_one_line_naming(test::run_baton("simulate --model lenet5"), "needs --costs FILE");
  expect_one_line_naming(test::run_baton("simulate --model resnet20 --costs " + costs()),
                         "times model 'lenet5', not 'resnet20'");
  const std::string corrupt = (dir_ / "corrupt.json").string();
  std::ofstream(corrupt) << "{\"format\": \"baton-costs 1\", \"model\": ";
  expect_one_line_naming(test::run_baton("simulate --model lenet5 --costs " + corrupt), "is not one baton profile wrote");
  expect_one_line_naming(test::run_baton("simulate --model lenet5 --costs " + costs() + " --network " + corrupt),
                         "the network file");
  expect_one_line_naming(test::run_baton("simulate --model lenet5 --costs " + costs() + " --cores-per-node -1"),
                         "--cores-per-node must be from 0");
  expect_one_line_naming(test::run_baton("simulate --model lenet5 --costs " + costs() + " --search"),
                         "--nodes and --ranks-per-node");
  expect_one_line_naming(test::run_baton("simulate --model lenet5 --costs " + costs() +
                                         " --replicas 8 --nodes 2 --ranks-per-node 2"),
                         "more than --nodes 2");
  expect_one_line_naming(test::run_baton("profile --model lenet5 --batch-size 32 --microbatches 3"),
                         "does not split into 3 microbatches");
  expect_one_line_naming(test::run_baton("profile --model alexnet --batch-size 100000000"), "raise --max-memory");
  expect_one_line_naming(test::run_baton("simulate --model lenet5 --costs " + costs() + " --iterations 1000000000"),
                         "more than the 1000000 a simulation plays");
}

}  // namespace
}  // namespace baton
