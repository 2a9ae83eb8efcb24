// The adaptive hybrid switch (--hybrid-plateau) end to end: it trains exactly as the fixed switch at
// the epoch it decided on, makes the same decision under mpirun as in one process, and a run
// stopped after the switch resumes to the uninterrupted run's losses.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

// LeNet-5 on 512 synthetic images, 8 updates per epoch, a 2-stage hybrid pipeline.
const std::string kHybrid = "train --dataset synthetic --train-size 512 --test-size 64 --epochs 6 --threads 1 --lr 0.01 "
                            "--stages 2 --pipeline hybrid ";

struct Logged {
  int64_t switch_epoch = 0;          // from the hybrid_switch event; 0 if none
  std::vector<double> train_losses;  // per epoch
};

Logged read_metrics(const fs::path& path) {
  Logged logged;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json event = nlohmann::json::parse(line);
    if (event.at("event") == "hybrid_switch") logged.switch_epoch = event.at("epoch").get<int64_t>();
    if (event.at("event") == "epoch") logged.train_losses.push_back(event.at("train_loss").get<double>());
  }
  return logged;
}

class HybridPlateau : public ::testing::Test {
 protected:
  void TearDown() override { fs::remove_all(dir_); }

  // `expected_exit`: 75 where the run stops at a checkpoint as asked.
  Logged train(const std::string& arguments, const std::string& name, bool mpi = false, int expected_exit = 0) {
    fs::create_directories(dir_);
    const std::string args = kHybrid + arguments + " --metrics " + (dir_ / (name + ".jsonl")).string();
    test::RunResult r = mpi ? test::run_command(test::mpirun_command(2, args), 120) : test::run_baton(args);
    EXPECT_EQ(r.exit_code, expected_exit) << r.err;
    Logged logged = read_metrics(dir_ / (name + ".jsonl"));
    std::printf("  %s: switch at epoch %lld, last training loss %.9g\n", name.c_str(),
                static_cast<long long>(logged.switch_epoch),
                logged.train_losses.empty() ? 0.0 : logged.train_losses.back());
    return logged;
  }

  fs::path dir_ = fs::temp_directory_path() / ("baton_plateau_" + std::to_string(::getpid()));
};

TEST_F(HybridPlateau, TrainsAsTheFixedSwitchAtTheEpochItChose) {
  const Logged adaptive = train("--emulate --hybrid-plateau 0.1", "adaptive");
  ASSERT_GE(adaptive.switch_epoch, 2);
  ASSERT_LE(adaptive.switch_epoch, 6);
  const Logged fixed = train("--emulate --hybrid-switch-epoch " + std::to_string(adaptive.switch_epoch), "fixed");
  EXPECT_EQ(adaptive.train_losses, fixed.train_losses);
  const Logged other = train("--emulate --hybrid-switch-epoch " + std::to_string(adaptive.switch_epoch + 1), "later");
  EXPECT_NE(adaptive.train_losses, other.train_losses) << "the switch epoch changes the arithmetic";
}

TEST_F(HybridPlateau, DecidesTheSameUnderMpirun) {
  const Logged emulated = train("--emulate --hybrid-plateau 0.1", "emulated");
  const Logged mpi = train("--hybrid-plateau 0.1", "mpi", true);
  EXPECT_EQ(mpi.switch_epoch, emulated.switch_epoch);
  EXPECT_EQ(mpi.train_losses, emulated.train_losses);
}

TEST_F(HybridPlateau, AResumedRunKeepsTheDecision) {
  const Logged whole = train("--emulate --hybrid-plateau 0.1", "whole");
  ASSERT_LE(whole.switch_epoch, 5);
  // Stops at the checkpoint at the end of the switch epoch (after the decision), then resumes.
  const std::string checkpoints = " --checkpoint-dir " + (dir_ / "checkpoints").string();
  const int64_t stop_at = whole.switch_epoch * 8;
  train("--emulate --hybrid-plateau 0.1 --stop-after-updates " + std::to_string(stop_at) + checkpoints, "stopped", false,
        75);
  const Logged resumed = train("--emulate --hybrid-plateau 0.1 --resume" + checkpoints, "stopped");
  EXPECT_EQ(resumed.switch_epoch, whole.switch_epoch);
  EXPECT_EQ(resumed.train_losses, whole.train_losses);
}

}  // namespace
}  // namespace baton
