// Every reproducer of the attacker-style review (issue 12) as a regression test: each bad command
// line ends within seconds, non-zero, with exactly one line on stderr that names the problem.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <zlib.h>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Bad {
  std::string name;
  std::string arguments;  // after `baton`
  std::string expected;   // part of the one line on stderr
};
void PrintTo(const Bad& b, std::ostream* out) { *out << b.name; }

const std::string kTiny = " --dataset synthetic --train-size 256 --test-size 64 --epochs 1 --threads 1";
const std::string kDiverging = "train --stages 2 --pipeline gpipe --emulate --dataset synthetic --train-size 512 "
                               "--test-size 64 --epochs 3 --threads 1 --checkpoint-every 2 --checkpoint-dir ";

class BadInput : public ::testing::TestWithParam<Bad> {};

TEST_P(BadInput, EndsWithinSecondsWithOneLine) {
  const Bad& b = GetParam();
  const auto start = Clock::now();
  test::RunResult r = test::run_baton(b.arguments, 30);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("  %.1f s: %s", seconds, r.err.c_str());
  EXPECT_NE(r.exit_code, 124) << "it ran until the 30 s limit";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(b.expected), std::string::npos) << r.err;
  EXPECT_LT(seconds, 20);
}

INSTANTIATE_TEST_SUITE_P(
    Reproducers, BadInput,
    ::testing::Values(
        // 1. Boost.Program_options looped for ever formatting these.
        Bad{"placeholder_in_option_name", "train '--x%canonical_option%'", "unrecognised option '--x%canonical_option%'"},
        Bad{"placeholder_token", "train '--x%original_token%'", "unrecognised option"},
        Bad{"placeholder_in_value", "train --lr '%value%'", "the argument ('%value%') for option '--lr' is invalid"},
        // 2. Optimiser settings that diverge or train backwards.
        Bad{"lr_inf", "train --lr inf" + kTiny, "--lr must be a positive number, not inf"},
        Bad{"momentum_nan", "train --momentum nan" + kTiny, "--momentum must be at least 0 and below 1, not nan"},
        Bad{"momentum_negative", "train --momentum -5" + kTiny, "--momentum must be at least 0 and below 1"},
        Bad{"momentum_ten", "train --momentum 10" + kTiny, "--momentum must be at least 0 and below 1"},
        Bad{"weight_decay_nan", "train --weight-decay nan" + kTiny, "--weight-decay must be 0 or more"},
        Bad{"weight_decay_negative", "train --weight-decay -1" + kTiny, "--weight-decay must be 0 or more"},
        Bad{"lr_gamma_nan", "train --lr-gamma nan" + kTiny, "--lr-gamma must be a positive factor"},
        Bad{"lr_gamma_negative", "train --lr-gamma -1" + kTiny, "--lr-gamma must be a positive factor"},
        Bad{"warmup_nan", "train --warmup-epochs nan" + kTiny, "--warmup-epochs must be from 0 to --epochs"},
        Bad{"warmup_negative", "train --warmup-epochs -1" + kTiny, "--warmup-epochs must be from 0 to --epochs"},
        Bad{"warmup_huge", "train --warmup-epochs 1e300" + kTiny, "--warmup-epochs must be from 0 to --epochs"},
        Bad{"milestone_negative", "train --lr-milestones -5" + kTiny, "--lr-milestones are epochs from 1 to --epochs"},
        Bad{"diverging", "train --lr 1000 --epochs 2 --dataset synthetic --train-size 256 --test-size 64 --threads 1",
            "training diverged: the loss of update"},
        // 3. Writes that fail.
        Bad{"metrics_full", "train --metrics /dev/full" + kTiny, "could not write the metrics file '/dev/full'"},
        Bad{"timeline_full", "train --timeline /dev/full" + kTiny, "could not write the timeline '/dev/full'"},
        Bad{"schedule_timeline_full", "schedule --timeline /dev/full", "could not write the timeline '/dev/full'"},
        // 4. Sizes that would claim unbounded memory.
        Bad{"classes_huge", "train --dataset synthetic --classes 1000000000", "--max-memory"},
        Bad{"train_size_huge", "train --dataset synthetic --train-size 1000000000000", "--max-memory"},
        Bad{"input_shape_huge", "train --dataset synthetic --input-shape 1x100000x100000", "--max-memory"},
        Bad{"bench_batch_huge", "bench --batch-size 1000000000", "more than --max-memory"},
        Bad{"schedule_3200_stages", "schedule --stages 3200", "3200 ranks are more than the 1024 it shows"},
        Bad{"schedule_10000_stages", "schedule --stages 10000", "10000 ranks are more than the 1024 it shows"},
        // 5. Values whose products overflowed.
        Bad{"epochs_max", "train --epochs 9223372036854775807" + std::string(" --dataset synthetic --train-size 256"),
            "overflow the update counter"},
        Bad{"ranks_overflow", "train --stages 65536 --replicas 65536", "4294967296 ranks, more than baton's"},
        Bad{"microbatches_overflow", "train --replicas 2 --microbatches 2147483647",
            "cannot be split into 2 replica(s) x 2147483647 microbatch(es)"},
        Bad{"shape_overflow", "train --dataset synthetic --input-shape 1x3037000500x3037000500", "64 bits"},
        // 7. Accepted without a word before.
        Bad{"test_size_zero", "train --test-size 0" + std::string(" --dataset synthetic"), "--test-size must be at least 1"},
        Bad{"hybrid_switch_zero", "train --pipeline hybrid --stages 2 --hybrid-switch-epoch 0", "--hybrid-switch-epoch"},
        Bad{"hybrid_switch_negative", "train --pipeline hybrid --stages 2 --hybrid-switch-epoch -5",
            "--hybrid-switch-epoch"},
        Bad{"classes_negative", "train --dataset synthetic --classes -1", "--classes must be at least 2"},
        Bad{"seed_negative", "train --seed -1", "--seed takes a whole number"},
        Bad{"shape_trailing_x", "train --dataset synthetic --input-shape 1x28x28x", "--input-shape expects numbers"},
        Bad{"newline_in_value", "train --model \"$(printf 'lenet\\n5')\"", "unknown model 'lenet\\n5'"},
        Bad{"pad_negative", "train --pad -1" + kTiny, "--pad must be from 0 to 1024 pixels, not -1"},
        // Mitigations that cannot combine, or do not apply to the mode.
        Bad{"local_without_delay", "train --replicas 2 --emulate --staleness local" + kTiny,
            "--staleness local predicts from the gradient delayed averaging has not yet applied"},
        Bad{"local_and_predict", "train --staleness local,predict" + kTiny, "predict and local both choose"},
        Bad{"local_and_dc", "train --staleness dc,local" + kTiny, "which local makes differ between replicas"}),
    [](const auto& info) { return info.param.name; });

// Big-endian 32-bit words of an IDX header.
std::string idx_header(std::vector<uint32_t> words) {
  std::string bytes;
  for (uint32_t w : words)
    for (int shift = 24; shift >= 0; shift -= 8) bytes += char((w >> shift) & 0xff);
  return bytes;
}

void write_gzip(const fs::path& path, const std::string& header, size_t zeros) {
  gzFile file = gzopen(path.c_str(), "wb9");
  ASSERT_NE(file, nullptr);
  gzwrite(file, header.data(), unsigned(header.size()));
  const std::string block(1 << 20, '\0');
  for (size_t left = zeros; left > 0; left -= std::min(left, block.size()))
    gzwrite(file, block.data(), unsigned(std::min(left, block.size())));
  gzclose(file);
}

// A gzipped IDX set of 65 KB that holds 64 images of 1024x1024: the data fits (256 MiB as floats),
// LeNet-5's activations for such images do not, and that is said before anything is allocated.
TEST(BadInput, ATinyFileOfHugeImagesIsRefusedBeforeTheModelIsBuilt) {
  const fs::path dir = fs::temp_directory_path() / ("baton_huge_images_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const std::string split : {"train", "t10k"}) {
    write_gzip(dir / (split + "-images-idx3-ubyte.gz"), idx_header({0x803, 64, 1024, 1024}), size_t(64) << 20);
    write_gzip(dir / (split + "-labels-idx1-ubyte.gz"), idx_header({0x801, 64}), 64);
  }
  std::printf("  images file: %ju bytes\n", std::uintmax_t(fs::file_size(dir / "train-images-idx3-ubyte.gz")));
  test::RunResult r = test::run_baton("train --dataset mnist --data-dir " + dir.string() + " --max-memory 8", 120);
  fs::remove_all(dir);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("training lenet5 in microbatches of 64 images needs about"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("more than --max-memory 8.00 GiB"), std::string::npos) << r.err;
}

TEST(BadInput, APlaceholderKeyInAnIniFileIsOneLine) {
  const fs::path ini = fs::temp_directory_path() / ("baton_placeholder_" + std::to_string(::getpid()) + ".ini");
  std::ofstream(ini) << "x%canonical_option% = 1\n";
  test::RunResult r = test::run_baton("train --config " + ini.string(), 30);
  fs::remove(ini);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is not valid: unrecognised option 'x%canonical_option%'"), std::string::npos) << r.err;
}

// A run that diverges after its first checkpoints stops with the divergence and leaves them usable.
TEST(BadInput, ADivergingRunKeepsItsCheckpoints) {
  const fs::path dir = fs::temp_directory_path() / ("baton_diverging_" + std::to_string(::getpid()));
  test::RunResult r = test::run_baton(kDiverging + dir.string() + " --lr 1000", 60);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("training diverged: the loss of update"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the checkpoints in '" + dir.string() + "' are intact"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir / "step-00000002" / "manifest.json"));
  test::RunResult exported = test::run_baton("export " + dir.string() + " --output " + (dir / "w.safetensors").string());
  EXPECT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_NE(exported.out.find("step-00000004 to"), std::string::npos) << exported.out;
  fs::remove_all(dir);
}

// AlexNet's 28.7 M parameters over 2 emulated replicas: about 1.28 GiB without mitigations, and
// `local` holds 2 more copies per replica (0.43 GiB), so 1.5 GiB fits one and refuses the other.
TEST(BadInput, MaxMemoryCountsTheBuffersOfStalenessMitigations) {
  const std::string bench = "bench --model alexnet --batch-size 4 --replicas 2 --dp delayed --emulate --iterations 1 "
                            "--repeats 1 --warmup 0 --max-memory 1.5 --staleness ";
  test::RunResult none = test::run_baton(bench + "none", 60);
  EXPECT_EQ(none.exit_code, 0) << none.err;
  test::RunResult local = test::run_baton(bench + "local", 60);
  EXPECT_NE(local.exit_code, 0);
  EXPECT_EQ(std::count(local.err.begin(), local.err.end(), '\n'), 1) << local.err;
  EXPECT_NE(local.err.find("more than --max-memory 1.50 GiB"), std::string::npos) << local.err;
}

TEST(BadInput, DelayedAveragingOnOneReplicaSaysWhatItDoes) {
  test::RunResult r = test::run_baton("train --dp delayed" + kTiny, 60);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: --dp delayed with one replica averages nothing"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace baton
