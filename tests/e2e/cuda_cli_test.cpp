// `baton` with the cuda backend as a user meets it: without a GPU every GPU request ends with one
// sentence; with one, a short training run on --backend cuda and a mixed CPU + GPU pipeline
// finish. Bad --backend, --stage-backends and --device values are refused in one line.
#include <gtest/gtest.h>

#include <algorithm>

#include "baton/config.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/run.hpp"

namespace baton {
namespace {

const std::string kTiny = " --model lenet5 --dataset synthetic --train-size 256 --test-size 64 --epochs 1 --threads 1";
const std::string kTwoStages = " --stages 2 --pipeline gpipe --microbatches 2 --emulate";

void expect_one_line_error(const test::RunResult& r, const std::string& expected) {
  std::printf("  %s", r.err.c_str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
}

bool has_gpu() { return test::unavailable(layers::Backend::cuda).empty(); }

// What a GPU request says on a machine without one (or from a build without CUDA).
const char* kNoGpu = BATON_WITH_CUDA ? "the cuda backend needs a CUDA device, but "
                                     : "this baton was built without CUDA (BATON_WITH_CUDA=OFF)";

TEST(CudaCli, BackendCudaTrainsOrSaysWhyNot) {
  test::RunResult r = test::run_baton("train --backend cuda" + kTiny, 300);
  if (!has_gpu()) return expect_one_line_error(r, kNoGpu);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("epoch 1/1"), std::string::npos) << r.out;
}

TEST(CudaCli, MixedPipelineTrainsOrSaysWhyNot) {
  test::RunResult r = test::run_baton("train --stage-backends cuda,cpu" + kTwoStages + kTiny, 300);
  if (!has_gpu()) return expect_one_line_error(r, kNoGpu);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("epoch 1/1"), std::string::npos) << r.out;
}

// The per-stage plumbing without a GPU: the reference kernels on stage 0, oneDNN on stage 1.
TEST(CudaCli, StageBackendsRunEachStageOnItsOwnKernels) {
  test::RunResult r = test::run_baton("train --stage-backends reference,cpu" + kTwoStages + kTiny, 300);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("epoch 1/1"), std::string::npos) << r.out;
}

TEST(CudaCli, BadBackendChoicesAreOneLine) {
  expect_one_line_error(test::run_baton("train --backend gpu" + kTiny), "unknown backend 'gpu'; choose cpu, cuda or reference");
  expect_one_line_error(test::run_baton("train --stage-backends cpu" + kTwoStages + kTiny),
                        "--stage-backends names 1 backend(s) for 2 stage(s); give one per stage");
  expect_one_line_error(test::run_baton("train --stage-backends cpu,tpu" + kTwoStages + kTiny), "unknown backend 'tpu'");
  if (has_gpu())
    expect_one_line_error(test::run_baton("train --backend cuda --device 99" + kTiny), "CUDA device 99 does not exist");
}

}  // namespace
}  // namespace baton
