// Checkpoints end to end, with the `baton` program: for every training mode, in one process and over
// MPI, a run stopped after a checkpoint and resumed logs the same per-update losses and ends with the
// same weights and momentum as the run that never stopped (bit for bit, max difference printed per
// tensor); elastic resumes under another split; stops by signal; a kill while writing; bad input.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "layers/model_spec.hpp"
#include "layers/zoo.hpp"
#include "runtime/base/safetensors.hpp"
#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

// 256 synthetic images in batches of 32: 8 updates per epoch, 16 in all; checkpoints every 3
// updates, so the stopped run stops mid-epoch (after update 6) and its resume crosses an epoch.
const std::string kData = " --dataset synthetic --train-size 256 --test-size 64 --epochs 2 --seed 3";
const std::string kShort = kData + " --batch-size 32 --log-every 1 --checkpoint-every 3";
const std::string kOneProcess = " --threads 1";  // jobs/mpirun.sh gives each rank its threads
constexpr int kStopAfter = 5, kStoppedAt = 6, kUpdates = 16;

struct Mode {
  std::string name;
  int ranks;
  std::string options;
};
void PrintTo(const Mode& mode, std::ostream* out) { *out << mode.name; }

const std::vector<Mode>& modes() {
  static const std::vector<Mode> all = {
      {"sequential", 1, "--model lenet5"},
      {"gpipe", 2, "--model lenet5 --stages 2 --pipeline gpipe --microbatches 2"},
      {"pipedream", 2, "--model lenet5 --stages 2 --pipeline pipedream"},
      {"stale", 2, "--model lenet5 --stages 2 --pipeline stale"},
      {"hybrid", 2, "--model lenet5 --stages 2 --pipeline hybrid"},  // stale in epoch 1, gpipe in epoch 2
      {"dp_sync", 2, "--model resnet20 --replicas 2 --dp sync"},
      {"dp_overlap", 2, "--model resnet20 --replicas 2 --dp overlap --bucket-mb 0.1"},
      {"dp_delayed", 2, "--model lenet5 --replicas 2 --dp delayed"},
      {"dp_sharded", 2, "--model resnet20 --replicas 2 --dp sharded --bucket-mb 0.1"},
      {"grid_2x2", 4, "--model resnet20 --stages 2 --replicas 2 --pipeline stale --dp sync"},
  };
  return all;
}

class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(fs::temp_directory_path() / ("baton_ckpt_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// `baton <arguments>` in one process, or under mpirun with `ranks` processes.
std::string baton_command(const std::string& arguments, int ranks, bool mpi) {
  if (!mpi) return BATON_BINARY " " + arguments;
  return "env BATON=" BATON_BINARY " OMP_NUM_THREADS=1 bash " BATON_SOURCE_DIR "/jobs/mpirun.sh " +
         std::to_string(ranks) + " " + arguments;
}

test::RunResult run(const std::string& arguments, int ranks, bool mpi, int timeout = 300) {
  return test::run_command(baton_command(arguments, ranks, mpi), timeout);
}

std::string train_args(const Mode& mode, bool mpi, const std::string& dir, const std::string& metrics) {
  return "train " + mode.options + kShort + (mpi ? "" : kOneProcess + " --emulate") + " --checkpoint-dir " + dir + " --metrics " +
         metrics;
}

// (update, loss) of every step event, and (epoch, train_loss, test_accuracy) of every epoch event.
std::vector<std::string> logged(const std::string& metrics) {
  std::ifstream in(metrics);
  std::vector<std::string> events;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json e = nlohmann::json::parse(line);
    if (e["event"] == "step") events.push_back("step " + e["update"].dump() + " loss " + e["loss"].dump());
    if (e["event"] == "epoch")
      events.push_back("epoch " + e["epoch"].dump() + " train_loss " + e["train_loss"].dump() + " test_accuracy " +
                       e["test_accuracy"].dump());
  }
  return events;
}

std::string checkpoint_of(const std::string& dir, int updates) {
  char name[32];
  std::snprintf(name, sizeof(name), "/step-%08d", updates);
  return dir + name;
}

// Every tensor of a checkpoint's files of one kind ("model" or "momentum"), by name, from all stages.
std::map<std::string, std::vector<float>> tensors_of(const std::string& checkpoint, const std::string& kind) {
  std::map<std::string, std::vector<float>> tensors;
  std::ifstream in(checkpoint + "/manifest.json");
  const nlohmann::json manifest = nlohmann::json::parse(in);
  for (const auto& record : manifest.at("files")) {
    if (record["kind"] != kind) continue;
    SafetensorsFile file(checkpoint + "/" + record["name"].get<std::string>());
    for (const auto& [name, entry] : file.tensors()) {
      if (entry.dtype != DType::f32) continue;
      std::vector<float> values((entry.end - entry.begin) / sizeof(float));
      file.read(name, std::span<float>(values));
      tensors[name] = std::move(values);
    }
  }
  return tensors;
}

// Prints the max |a - b| of every tensor on one line and returns the largest.
double max_difference(const std::string& label, const std::map<std::string, std::vector<float>>& a,
                      const std::map<std::string, std::vector<float>>& b) {
  EXPECT_GT(a.size(), 0u) << label << ": no tensors to compare";
  EXPECT_EQ(a.size(), b.size()) << label;
  double largest = 0;
  std::string line = "  " + label + " (" + std::to_string(a.size()) + " tensors):";
  for (const auto& [name, values] : a) {
    auto other = b.find(name);
    if (other == b.end() || other->second.size() != values.size()) {
      ADD_FAILURE() << label << ": " << name << " is missing or of another size";
      continue;
    }
    double diff = 0;
    for (size_t i = 0; i < values.size(); ++i) diff = std::max(diff, double(std::abs(values[i] - other->second[i])));
    char text[32];
    std::snprintf(text, sizeof(text), " %g", diff);
    line += " " + name + text;
    largest = std::max(largest, diff);
  }
  std::printf("%s\n", line.c_str());
  return largest;
}

double max_difference(const std::string& label, const std::string& a, const std::string& b, const std::string& kind) {
  return max_difference(label + " " + kind, tensors_of(a, kind), tensors_of(b, kind));
}

class ResumeEqualsUninterrupted : public ::testing::TestWithParam<std::tuple<Mode, bool>> {};

TEST_P(ResumeEqualsUninterrupted, SameLossesWeightsAndMomentum) {
  const auto& [mode, mpi] = GetParam();
  TempDir tmp(mode.name + (mpi ? "_mpi" : ""));
  const std::string whole = tmp / "whole", parts = tmp / "parts";
  test::RunResult a = run(train_args(mode, mpi, whole, tmp / "whole.jsonl"), mode.ranks, mpi);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const std::string resumable = train_args(mode, mpi, parts, tmp / "parts.jsonl");
  test::RunResult stopped = run(resumable + " --stop-after-updates " + std::to_string(kStopAfter), mode.ranks, mpi);
  ASSERT_EQ(stopped.exit_code, 75) << stopped.out << stopped.err;
  EXPECT_NE(stopped.out.find("stopped after update " + std::to_string(kStoppedAt)), std::string::npos) << stopped.out;
  test::RunResult resumed = run(resumable + " --resume", mode.ranks, mpi);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming from " + checkpoint_of(parts, kStoppedAt)), std::string::npos) << resumed.out;

  const std::vector<std::string> uninterrupted = logged(tmp / "whole.jsonl"), interrupted = logged(tmp / "parts.jsonl");
  EXPECT_EQ(uninterrupted.size(), size_t(kUpdates + 2));
  EXPECT_EQ(interrupted, uninterrupted);  // every update's loss and both epochs, exactly, nothing logged twice
  // Replicas of a model with batch norm keep their own statistics, in their own files.
  const bool replica_files = mode.options.find("resnet20") != std::string::npos &&
                             mode.options.find("--replicas") != std::string::npos;
  for (const std::string kind : {"model", "momentum", "replica"}) {
    if (kind == "replica" && !replica_files) continue;
    EXPECT_EQ(max_difference(mode.name, checkpoint_of(whole, kUpdates), checkpoint_of(parts, kUpdates), kind), 0.0);
  }
}

std::string mode_name(const ::testing::TestParamInfo<std::tuple<Mode, bool>>& info) {
  return std::get<0>(info.param).name + (std::get<1>(info.param) ? "_mpi" : "_emulated");
}

INSTANTIATE_TEST_SUITE_P(Modes, ResumeEqualsUninterrupted,
                         ::testing::Combine(::testing::ValuesIn(modes()), ::testing::Bool()), mode_name);

// Stopped under one configuration, resumed under another: weights and momentum carry over by name.
// GPipe's arithmetic does not depend on the split, so a different split must end bit for bit where
// the uninterrupted run ends; one replica instead of two sums the gradient in another order.
struct Elastic {
  std::string name;
  std::string before, after;
  double tolerance;
};
void PrintTo(const Elastic& e, std::ostream* out) { *out << e.name; }

class ElasticResume : public ::testing::TestWithParam<Elastic> {};

TEST_P(ElasticResume, WeightsAndMomentumCarryOver) {
  const Elastic& e = GetParam();
  TempDir tmp("elastic_" + e.name);
  const std::string base = "train --model lenet5" + kShort + kOneProcess + " --emulate --metrics " + tmp / "m.jsonl";
  ASSERT_EQ(run(base + " " + e.before + " --checkpoint-dir " + tmp / "whole", 1, false).exit_code, 0);
  const std::string parts = " --checkpoint-dir " + tmp / "parts";
  ASSERT_EQ(run(base + " " + e.before + parts + " --stop-after-updates 5", 1, false).exit_code, 75);
  test::RunResult resumed = run(base + " " + e.after + parts + " --resume", 1, false);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  std::printf("%s", resumed.out.substr(0, resumed.out.find("epoch 1/2")).c_str());
  for (const std::string kind : {"model", "momentum"}) {
    EXPECT_LE(max_difference(e.name, checkpoint_of(tmp / "whole", kUpdates), checkpoint_of(tmp / "parts", kUpdates), kind),
              e.tolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Splits, ElasticResume,
    ::testing::Values(Elastic{"stages_2_to_4", "--stages 2 --pipeline gpipe --microbatches 2",
                              "--stages 4 --pipeline gpipe --microbatches 2", 0.0},
                      Elastic{"partition", "--stages 2 --pipeline gpipe --partition conv2",
                              "--stages 2 --pipeline gpipe --partition fc1", 0.0},
                      Elastic{"replicas_2_to_1", "--replicas 2", "--replicas 1", 1e-5}),
    [](const auto& info) { return info.param.name; });

TEST(ElasticResume, ATwoReplicaCheckpointWithBatchNormResumesOnOneReplica) {
  TempDir tmp("elastic_bn");
  const std::string base = "train --model resnet20" + kShort + kOneProcess + " --emulate --dp sync --checkpoint-dir " + tmp / "c";
  ASSERT_EQ(run(base + " --replicas 2 --stop-after-updates 5", 1, false).exit_code, 75);
  EXPECT_TRUE(fs::exists(checkpoint_of(tmp / "c", kStoppedAt) + "/stage0.replica1.safetensors"));
  test::RunResult resumed = run(base + " --replicas 1 --resume --stop-after-updates 6", 1, false);
  EXPECT_EQ(resumed.exit_code, 75) << resumed.err;
  EXPECT_NE(resumed.out.find("written by 1 stage(s) x 2 replica(s)"), std::string::npos) << resumed.out;
  EXPECT_TRUE(fs::exists(checkpoint_of(tmp / "c", 8) + "/manifest.json"));  // the epoch's end comes first
}

// A run long enough to be signalled after its first checkpoint: ResNet-20, 64 updates.
const std::string kSignalled =
    "train --model resnet20 --dataset synthetic --train-size 1024 --test-size 64 --batch-size 32 --epochs 2"
    " --seed 5 --checkpoint-every 4";

// The line of `text` that holds `marker`, or "".
std::string line_with(const std::string& text, const std::string& marker) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return "";
  const size_t newline = text.rfind('\n', at), start = newline == std::string::npos ? 0 : newline + 1;
  const size_t end = text.find('\n', at);
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

bool has_checkpoint(const std::string& dir) {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error))
    if (fs::exists(entry.path() / "manifest.json")) return true;
  return false;
}

void signal_after_first_checkpoint(test::Background& job, const std::string& dir, int number) {
  for (int i = 0; i < 60000 && !has_checkpoint(dir) && job.running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  job.signal(number);
}

class SignalledRun : public ::testing::TestWithParam<bool> {};

TEST_P(SignalledRun, CheckpointsStopsWith75AndResumesToTheSameWeights) {
  const bool mpi = GetParam();
  TempDir tmp(mpi ? "signal_mpi" : "signal");
  const std::string parallel = " --stages 2 --pipeline stale" + (mpi ? std::string() : kOneProcess + " --emulate");
  ASSERT_EQ(run(kSignalled + parallel + " --checkpoint-dir " + tmp / "whole", 2, mpi).exit_code, 0);
  const std::string args = kSignalled + parallel + " --checkpoint-dir " + tmp / "parts";
  test::Background job("exec " + baton_command(args, 2, mpi));
  signal_after_first_checkpoint(job, tmp / "parts", SIGUSR1);
  test::RunResult stopped = job.wait(300);
  std::printf("  %s\n", line_with(stopped.out, "baton: stopped").c_str());
  ASSERT_EQ(stopped.exit_code, 75) << stopped.err;
  EXPECT_NE(stopped.out.find("as asked by signal User defined signal 1"), std::string::npos) << stopped.out;
  test::RunResult resumed = run(args + " --resume", 2, mpi);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(max_difference("signalled", checkpoint_of(tmp / "whole", 64), checkpoint_of(tmp / "parts", 64), "model"), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Launch, SignalledRun, ::testing::Bool(),
                         [](const auto& info) { return info.param ? std::string("mpi") : std::string("emulated"); });

TEST(Checkpoints, AKillWhileWritingLeavesThePreviousOneUsable) {
  TempDir tmp("killed");
  // AlexNet: 2 x 115 MB a checkpoint, long enough to be caught in the middle of writing one.
  const std::string args = "train --model alexnet --dataset synthetic --train-size 64 --test-size 16 --batch-size 16"
                           " --epochs 1 --threads 1 --checkpoint-every 1 --checkpoint-dir " + tmp / "c";
  test::Background job("exec " BATON_BINARY " " + args);
  const std::string writing = checkpoint_of(tmp / "c", 2) + ".partial";
  for (int i = 0; i < 120000 && !fs::exists(writing) && job.running(); ++i)
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  job.signal(SIGKILL);
  EXPECT_EQ(job.wait(60).exit_code, 128 + SIGKILL);
  ASSERT_TRUE(fs::exists(writing)) << "the kill did not land while checkpoint 2 was being written";
  EXPECT_FALSE(fs::exists(checkpoint_of(tmp / "c", 2)));
  test::RunResult resumed = run(args + " --resume", 1, false);
  std::printf("  %s\n", line_with(resumed.out, "baton: resuming").c_str());
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming from " + checkpoint_of(tmp / "c", 1)), std::string::npos);
  EXPECT_TRUE(fs::exists(checkpoint_of(tmp / "c", 4) + "/manifest.json"));
  EXPECT_FALSE(fs::exists(writing));  // the next checkpoint cleared what the kill left
}

// Two checkpoints (after updates 3 and 6) of a LeNet-5 run stopped after update 5.
class BrokenCheckpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run(args_ + " --stop-after-updates 5", 1, false).exit_code, 75);
  }
  static void truncate(const std::string& file) { fs::resize_file(file, fs::file_size(file) / 2); }
  TempDir tmp_{"broken"};
  std::string dir_ = tmp_ / "c";
  std::string args_ = "train --model lenet5" + kShort + kOneProcess + " --checkpoint-dir " + dir_;
};

TEST_F(BrokenCheckpoints, ATruncatedNewestOneIsNamedAndThePreviousOneUsed) {
  truncate(checkpoint_of(dir_, 6) + "/stage0.momentum.safetensors");
  test::RunResult r = run(args_ + " --resume", 1, false);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("step-00000006 (stage0.momentum.safetensors has"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("resuming from " + checkpoint_of(dir_, 3)), std::string::npos) << r.out;
}

TEST_F(BrokenCheckpoints, NoneUsableIsOneError) {
  truncate(checkpoint_of(dir_, 6) + "/stage0.safetensors");
  std::ofstream(checkpoint_of(dir_, 3) + "/manifest.json") << "{\"format\": ";
  test::RunResult r = run(args_ + " --resume", 1, false);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_NE(r.err.find("no usable checkpoint in"), std::string::npos);
  EXPECT_NE(r.err.find("is not valid JSON"), std::string::npos);
}

TEST_F(BrokenCheckpoints, AnotherBatchSizeIsRefused) {
  test::RunResult r = run("train --model lenet5" + kData + " --batch-size 16 --checkpoint-dir " + dir_ + " --resume", 1, false);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("was written with --batch-size 32"), std::string::npos) << r.err;
}

TEST_F(BrokenCheckpoints, AnotherModelOrTensorShapeIsRefused) {
  test::RunResult r = run("train --model resnet20" + kShort + kOneProcess + " --checkpoint-dir " + dir_ + " --resume", 1, false);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("holds lenet5 for 1x28x28 images"), std::string::npos) << r.err;
  // A manifest that says 5 classes over tensors of 10.
  const std::string manifest = checkpoint_of(dir_, 6) + "/manifest.json";
  std::ifstream in(manifest);
  nlohmann::json m = nlohmann::json::parse(in);
  m["classes"] = 5;
  std::ofstream(manifest) << m.dump();
  r = run(args_ + " --classes 5 --resume", 1, false);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("holds 'fc3.weight' as [10,84] but this model needs [5,84]"), std::string::npos) << r.err;
}

TEST(Checkpoints, ResumeWithNoCheckpointYetStartsFromTheBeginning) {
  TempDir tmp("empty");
  test::RunResult r = run("train --model lenet5" + kShort + kOneProcess + " --checkpoint-dir " + tmp / "c" + " --resume", 1, false);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("no checkpoint in '" + tmp / "c" + "' yet; starting from the beginning"), std::string::npos);
  EXPECT_TRUE(fs::exists(checkpoint_of(tmp / "c", kUpdates) + "/manifest.json"));
}

std::vector<std::string> folders_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Checkpoints, OnlyTheNewestKAreKept) {
  TempDir tmp("keep");
  ASSERT_EQ(run("train --model lenet5" + kShort + kOneProcess + " --checkpoint-dir " + tmp / "two", 1, false).exit_code, 0);
  EXPECT_EQ(folders_in(tmp / "two"), (std::vector<std::string>{"step-00000015", "step-00000016"}));
  ASSERT_EQ(run("train --model lenet5" + kShort + kOneProcess + " --keep-checkpoints 3 --checkpoint-dir " + tmp / "three",
                1, false).exit_code, 0);
  EXPECT_EQ(folders_in(tmp / "three"), (std::vector<std::string>{"step-00000012", "step-00000015", "step-00000016"}));
}

// At a learning rate too small to change the weights, the second epoch repeats the first one's
// losses update by update exactly when both see the files' order.
TEST(Checkpoints, ShuffleOffKeepsTheFilesOrderEveryEpoch) {
  TempDir tmp("shuffle");
  auto losses_by_epoch = [&](const std::string& shuffle) {
    const std::string metrics = tmp / (shuffle + ".jsonl");
    test::RunResult r = run("train --model lenet5" + kData + kOneProcess + " --batch-size 32 --log-every 1 --lr 1e-12 "
                            "--momentum 0 --weight-decay 0 --shuffle " + shuffle + " --metrics " + metrics, 1, false);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> steps;
    for (const std::string& event : logged(metrics))
      if (event.rfind("step", 0) == 0) steps.push_back(event.substr(event.find(" loss ")));
    return std::make_pair(std::vector<std::string>(steps.begin(), steps.begin() + 8),
                          std::vector<std::string>(steps.begin() + 8, steps.end()));
  };
  const auto [off_first, off_second] = losses_by_epoch("off");
  const auto [on_first, on_second] = losses_by_epoch("on");
  EXPECT_EQ(off_first, off_second);
  EXPECT_NE(on_first, on_second);
  EXPECT_NE(run("train --shuffle sometimes", 1, false).err.find("--shuffle takes on or off"), std::string::npos);
}

TEST(Checkpoints, AFolderThatCannotBeWrittenIsOneErrorBeforeTraining) {
  for (const std::string dir : {"/proc/baton-checkpoints", "/dev/null/checkpoints"}) {
    test::RunResult r = run("train --model lenet5" + kShort + kOneProcess + " --checkpoint-dir " + dir, 1, false);
    std::printf("  %s", r.err.c_str());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
    EXPECT_NE(r.err.find("choose a writable --checkpoint-dir"), std::string::npos);
    EXPECT_EQ(r.out.find("epoch"), std::string::npos);
  }
}

TEST(Checkpoints, AFullDiskFailsTheNextCheckpointAndKeepsThePreviousOne) {
  TempDir tmp("full");
  const std::string dir = tmp / "disk";
  fs::create_directories(dir);
  // Room for one LeNet-5 checkpoint (about 0.5 MB), not two.
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=800k") != 0) GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  const std::string args = "train --model lenet5" + kShort + kOneProcess + " --checkpoint-dir " + dir + "/c";
  test::RunResult r = run(args, 1, false);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_NE(r.err.find("checkpoint step-00000006 could not be written"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(checkpoint_of(dir + "/c", 6) + ".partial"));
  test::RunResult exported = run("export " + dir + "/c --output " + tmp / "model.safetensors", 1, false);
  EXPECT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_NE(exported.out.find(checkpoint_of(dir + "/c", 3)), std::string::npos) << exported.out;
  ::umount(dir.c_str());
}

// A safetensors file with every LeNet-5 tensor under its name, zero-filled, but for the changes asked.
std::string lenet5_weights(const std::string& path, const std::string& drop, const std::string& extra,
                           const std::string& misshape) {
  layers::ModelSpec model = layers::build_model("lenet5", {1, 28, 28}, 10);
  std::vector<std::vector<float>> storage;
  SafetensorsWriter writer;
  for (const layers::ModelTensor& t : layers::model_tensors(model)) {
    if (t.name == drop) continue;
    Dims dims = t.name == misshape ? Dims{element_count(t.spec.dims)} : t.spec.dims;
    storage.emplace_back(size_t(element_count(dims)), 0.0f);
    writer.add(t.name, std::span<const float>(storage.back()), dims);
  }
  if (!extra.empty()) {
    storage.emplace_back(1, 0.0f);
    writer.add(extra, std::span<const float>(storage.back()), {1});
  }
  writer.write(path);
  return path;
}

TEST(InitFrom, MissingExtraAndMisshapedTensorsAreNamedInOneSentence) {
  TempDir tmp("init");
  const std::string file = lenet5_weights(tmp / "bad.safetensors", "fc3.bias", "fc4.weight", "conv2.weight");
  test::RunResult r = run("train --model lenet5" + kData + kOneProcess + " --init-from " + file, 1, false);
  std::printf("  %s", r.err.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  for (const std::string part : {"missing fc3.bias", "extra fc4.weight", "mis-shaped conv2.weight ([2400] in the file, "
                                                                         "[16,6,5,5] here)"})
    EXPECT_NE(r.err.find(part), std::string::npos) << part;
}

TEST(InitFrom, ExportedWeightsStartARunWhereTheyLeftOff) {
  TempDir tmp("init_export");
  const std::string data = " --dataset synthetic --train-size 512 --test-size 256 --batch-size 32 --seed 9 --threads 1";
  test::RunResult trained = run("train --model lenet5 --epochs 2" + data + " --checkpoint-dir " + tmp / "c" +
                                    " --metrics " + tmp / "a.jsonl", 1, false);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  ASSERT_EQ(run("export " + tmp / "c" + " --output " + tmp / "w.safetensors", 1, false).exit_code, 0);
  // One more epoch at a learning rate too small to move anything: the test accuracy is the exported model's.
  test::RunResult again = run("train --model lenet5 --epochs 1 --lr 1e-12 --momentum 0 --weight-decay 0" + data +
                                  " --init-from " + tmp / "w.safetensors" + " --metrics " + tmp / "b.jsonl", 1, false);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const std::vector<std::string> a = logged(tmp / "a.jsonl"), b = logged(tmp / "b.jsonl");
  auto accuracy = [](const std::string& event) { return std::stod(event.substr(event.rfind(' '))); };
  std::printf("  test accuracy after training %.4f, of a run started from its export %.4f\n", accuracy(a.back()),
              accuracy(b.back()));
  EXPECT_GT(accuracy(a.back()), 0.2);
  EXPECT_NEAR(accuracy(b.back()), accuracy(a.back()), 0.01);
}

int run_command_ok(const std::string& command) { return test::run_command(command, 60).exit_code; }

// One epoch on the real Fashion-MNIST, exported and loaded with load_state_dict(strict=True) into
// the PyTorch twin of bench/pytorch_models.py, which must score the test accuracy baton reported.
class ExportIntoPyTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(ExportIntoPyTorch, TheTwinScoresBatonsTestAccuracy) {
  const std::string data = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(data + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  if (run_command_ok("/usr/bin/python3 -c 'import torch'") != 0) GTEST_SKIP() << "PyTorch (python3-torch) is missing";
  TempDir tmp("export_" + GetParam());
  test::RunResult trained = run("train --model " + GetParam() + " --epochs 1 --batch-size 128 --threads 2 --data-dir " +
                                    data + " --checkpoint-dir " + tmp / "c" + " --metrics " + tmp / "m.jsonl",
                                1, false, 900);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  test::RunResult exported = run("export " + tmp / "c" + " --output " + tmp / "model.safetensors", 1, false);
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::printf("  %s", exported.out.c_str());
  const std::vector<std::string> events = logged(tmp / "m.jsonl");
  const std::string accuracy = events.back().substr(events.back().rfind(' ') + 1);
  test::RunResult checked = test::run_command("/usr/bin/python3 -B " BATON_SOURCE_DIR "/tests/python/check_export.py "
                                              "--threads 2 --export " + tmp / "model.safetensors" + " --data-dir " +
                                                  data + " --expect-accuracy " + accuracy,
                                              600);
  std::printf("  baton: %s, PyTorch: %s", accuracy.c_str(), checked.out.c_str());
  EXPECT_EQ(checked.exit_code, 0) << checked.err;
}

INSTANTIATE_TEST_SUITE_P(Models, ExportIntoPyTorch, ::testing::Values("lenet5", "resnet20"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace baton
