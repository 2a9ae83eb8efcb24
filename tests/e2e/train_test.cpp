// Real training runs of the `baton` program: LeNet-5 on Debian's Fashion-MNIST reaches the
// accuracy the README promises, and options from an INI file yield to the command line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

std::vector<nlohmann::json> read_events(const fs::path& path) {
  std::vector<nlohmann::json> events;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) events.push_back(nlohmann::json::parse(line));
  return events;
}

std::vector<nlohmann::json> of_kind(const std::vector<nlohmann::json>& events, const std::string& kind) {
  std::vector<nlohmann::json> matching;
  for (const auto& e : events)
    if (e.at("event") == kind) matching.push_back(e);
  return matching;
}

TEST(Training, LeNet5OnFashionMnistReaches90Point5PercentIn10Epochs) {
  const char* data = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(fs::path(data) / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)";
  const fs::path metrics = fs::temp_directory_path() / "baton_lenet5_metrics.jsonl";
  test::RunResult r = test::run_baton("train --model lenet5 --dataset fashion-mnist --data-dir " + std::string(data) +
                                          " --epochs 10 --metrics " + metrics.string(),
                                      600);
  std::printf("%s", r.out.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto epochs = of_kind(read_events(metrics), "epoch");
  ASSERT_EQ(epochs.size(), 10u);
  for (const char* key : {"epoch", "train_loss", "train_accuracy", "test_accuracy", "images_per_sec", "seconds"})
    EXPECT_TRUE(epochs.back().contains(key)) << key;
  EXPECT_GE(epochs.back().at("test_accuracy").get<double>(), 0.905);
  EXPECT_LT(epochs.back().at("train_loss").get<double>(), epochs.front().at("train_loss").get<double>());
  fs::remove(metrics);
}

TEST(Training, CommandLineOverridesTheConfigFile) {
  const fs::path dir = fs::temp_directory_path() / "baton_ini_test";
  fs::create_directories(dir);
  std::ofstream(dir / "run.ini") << "# a short synthetic run\nmodel = lenet5\ndataset = synthetic\nepochs = 2\n"
                                    "batch-size = 32\ntrain-size = 256\ntest-size = 64\nlr = 0.01\n";
  test::RunResult r = test::run_baton("train --config " + (dir / "run.ini").string() + " --batch-size 16 --metrics " +
                                      (dir / "m.jsonl").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto events = read_events(dir / "m.jsonl");
  auto start = of_kind(events, "start");
  ASSERT_EQ(start.size(), 1u);
  EXPECT_EQ(start[0].at("batch_size"), 16);        // command line
  EXPECT_EQ(start[0].at("epochs"), 2);             // file
  EXPECT_EQ(start[0].at("model"), "lenet5");       // file
  EXPECT_EQ(of_kind(events, "epoch").size(), 2u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace baton
