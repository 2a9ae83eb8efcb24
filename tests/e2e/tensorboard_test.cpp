// `baton train --tensorboard DIR` read back by the real `tensorboard` package: every step and epoch
// curve is there with its points, including the per-stage forward delays that change at a hybrid
// switch. The Python with tensorboard is BATON_TENSORBOARD_PYTHON (.ci/run makes a virtual env).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

std::string tensorboard_python() {
  const char* python = std::getenv("BATON_TENSORBOARD_PYTHON");
  if (python == nullptr || test::run_command(std::string(python) + " -c 'import tensorboard'", 60).exit_code != 0)
    return "";
  return python;
}

TEST(TensorBoard, TheRealReaderSeesEveryCurveOfARun) {
  const std::string python = tensorboard_python();
  if (python.empty())
    GTEST_SKIP() << "BATON_TENSORBOARD_PYTHON is not a Python with the tensorboard package (.ci/run makes one: "
                    "python3 -m venv DIR && DIR/bin/pip install tensorboard)";
  const fs::path dir = fs::temp_directory_path() / ("baton_tensorboard_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // 512 images in batches of 64: 8 updates per epoch; the hybrid pipeline is stale in epoch 1 only.
  test::RunResult trained = test::run_baton("train --dataset synthetic --train-size 512 --test-size 64 --epochs 2 "
                                            "--threads 1 --stages 2 --pipeline hybrid --emulate --tensorboard " +
                                            dir.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  test::RunResult read = test::run_command(python + " " BATON_SOURCE_DIR "/tests/python/read_tensorboard.py " +
                                               dir.string() + " --expect step/loss=16 --expect step/lr=16 "
                                               "--expect epoch/test_accuracy=2 --expect epoch/stage_forward_delays/0=2",
                                           120);
  fs::remove_all(dir);
  std::printf("%s", read.out.c_str());
  ASSERT_EQ(read.exit_code, 0) << read.err;
  EXPECT_NE(read.out.find("epoch/stage_forward_delays/0: 2 points, first (step 8, 1), last (step 16, 0)"),
            std::string::npos);
  EXPECT_NE(read.out.find("step/lr: 16 points, first (step 1, 0.05)"), std::string::npos);
}

// A run resumed from an older checkpoint redoes updates 9-16; TensorBoard must show each once. (The
// checkpoint at update 8 ends epoch 1, whose evaluation the resumed run logs again: the same point.)
TEST(TensorBoard, AResumedRunShowsEachUpdateOnce) {
  const std::string python = tensorboard_python();
  if (python.empty()) GTEST_SKIP() << "BATON_TENSORBOARD_PYTHON is not a Python with the tensorboard package";
  const fs::path dir = fs::temp_directory_path() / ("baton_tensorboard_resume_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string run = "train --dataset synthetic --train-size 512 --test-size 64 --epochs 2 --threads 1 "
                          "--checkpoint-every 4 --keep-checkpoints 10 --checkpoint-dir " + (dir / "checkpoints").string() +
                          " --tensorboard " + (dir / "curves").string();
  ASSERT_EQ(test::run_baton(run).exit_code, 0);
  fs::remove_all(dir / "checkpoints" / "step-00000012");
  fs::remove_all(dir / "checkpoints" / "step-00000016");
  test::RunResult resumed = test::run_baton(run + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  test::RunResult read = test::run_command(python + " " BATON_SOURCE_DIR "/tests/python/read_tensorboard.py " +
                                               (dir / "curves").string() + " --expect step/loss=16 --expect "
                                               "step/lr=16", 120);
  fs::remove_all(dir);
  std::printf("%s", read.out.c_str());
  EXPECT_EQ(read.exit_code, 0) << read.out << read.err;
}

}  // namespace
}  // namespace baton
