// The `baton` program on bad input: every mistake ends with a non-zero exit and exactly one line
// on stderr that names the problem and the fix; plus the help, version and model listing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;
using test::run_baton;

// A fresh folder under the temp directory, removed with the fixture.
class TempDir {
 public:
  explicit TempDir(const std::string& name) : path_(fs::temp_directory_path() / ("baton_cli_" + name)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void write(const std::string& file, const std::vector<unsigned char>& bytes) const {
    std::ofstream out(path_ / file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }

 private:
  fs::path path_;
};

std::vector<unsigned char> idx_header(unsigned magic, std::vector<unsigned> dims) {
  std::vector<unsigned char> bytes;
  auto put = [&](unsigned v) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<unsigned char>(v >> shift));
  };
  put(magic);
  for (unsigned d : dims) put(d);
  return bytes;
}

// The four Fashion-MNIST files, each with `count` images; `images` replaces the training images.
void write_idx_set(const TempDir& dir, const std::vector<unsigned char>& images) {
  std::vector<unsigned char> labels = idx_header(0x801, {4});
  labels.insert(labels.end(), {1, 2, 3, 4});
  std::vector<unsigned char> good = idx_header(0x803, {4, 28, 28});
  good.resize(good.size() + 4 * 28 * 28, 7);
  dir.write("train-images-idx3-ubyte", images);
  dir.write("train-labels-idx1-ubyte", labels);
  dir.write("t10k-images-idx3-ubyte", good);
  dir.write("t10k-labels-idx1-ubyte", labels);
}

// Exit code non-zero, one line on stderr from rank 0 that contains `phrase`.
void expect_one_line_error(const std::string& args, const std::string& phrase) {
  test::RunResult r = run_baton(args);
  SCOPED_TRACE("baton " + args + "\nstderr: " + r.err);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "timed out";
  EXPECT_EQ(r.err.rfind("baton (rank 0): ", 0), 0u);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  EXPECT_NE(r.err.find(phrase), std::string::npos) << "expected: " << phrase;
  std::printf("  baton %s\n    -> %s", args.c_str(), r.err.c_str());
}

TEST(CliErrors, UnknownModel) { expect_one_line_error("train --model lenet7", "unknown model 'lenet7'"); }
TEST(CliErrors, UnknownDataset) { expect_one_line_error("train --dataset imagenet", "unknown dataset 'imagenet'"); }
TEST(CliErrors, UnknownFlag) { expect_one_line_error("train --learning-rate 3", "unrecognised option '--learning-rate'"); }
TEST(CliErrors, UnknownCommand) { expect_one_line_error("fit", "unknown command 'fit'"); }
TEST(CliErrors, BatchSizeZero) { expect_one_line_error("train --batch-size 0", "--batch-size must be at least 1"); }
TEST(CliErrors, MissingDataDirectory) {
  expect_one_line_error("train --data-dir /nonexistent/fashion", "data directory '/nonexistent/fashion' does not exist");
}
TEST(CliErrors, MissingConfigFile) { expect_one_line_error("train --config /nonexistent.ini", "config file"); }
TEST(CliErrors, ModelDoesNotFitTheImages) {
  expect_one_line_error("train --model vgg16 --dataset synthetic --input-shape 1x28x28", "does not fit");
}

TEST(CliErrors, TruncatedIdxFile) {
  TempDir dir("truncated");
  std::vector<unsigned char> images = idx_header(0x803, {4, 28, 28});
  images.resize(images.size() + 100);
  write_idx_set(dir, images);
  expect_one_line_error("train --data-dir " + dir.path().string(), "truncated");
}

TEST(CliErrors, WrongMagicIdxFile) {
  TempDir dir("magic");
  std::vector<unsigned char> images = idx_header(0x1234, {4, 28, 28});
  images.resize(images.size() + 4 * 28 * 28);
  write_idx_set(dir, images);
  expect_one_line_error("train --data-dir " + dir.path().string(), "is not an IDX image file");
}

TEST(CliErrors, CorruptCifarFile) {
  TempDir dir("cifar");
  for (const char* name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                           "data_batch_5.bin", "test_batch.bin"})
    dir.write(name, std::vector<unsigned char>(3073 + 5, 1));
  expect_one_line_error("train --model resnet20 --dataset cifar10 --data-dir " + dir.path().string(), "3073");
}

TEST(CliErrors, ConfigFileWithUnknownKey) {
  TempDir dir("ini");
  std::ofstream(dir.path() / "run.ini") << "model = lenet5\nlearning-rate = 0.1\n";
  expect_one_line_error("train --config " + (dir.path() / "run.ini").string(), "config file");
}

TEST(Cli, HelpListsEveryGroup) {
  test::RunResult r = run_baton("train --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* text : {"General", "Model and data", "Optimisation", "Output", "Checkpoints", "--config", "--metrics",
                           "--lr-schedule", "--shuffle", "--log-every", "--checkpoint-dir", "--resume", "--init-from"})
    EXPECT_NE(r.out.find(text), std::string::npos) << text;
}

TEST(Cli, UsageAndVersionAreFirstScreenText) {
  test::RunResult r = run_baton("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* text : {"usage: baton <command>", "train", "bench", "schedule", "models", "export"})
    EXPECT_NE(r.out.find(text), std::string::npos) << text;
  r = run_baton("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("baton 0.", 0), 0u) << r.out;
  r = run_baton("export --help");
  EXPECT_NE(r.out.find("usage: baton export CHECKPOINT_DIR --output FILE.safetensors"), std::string::npos) << r.out;
}

TEST(Cli, ModelsListsTheZoo) {
  test::RunResult r = run_baton("models");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* text : {"lenet5", "alexnet", "vgg11", "vgg16", "resnet20", "resnet56", "resnet110", "resnet18",
                           "resnet50", "269722", "25557032"})
    EXPECT_NE(r.out.find(text), std::string::npos) << text;
}

}  // namespace
}  // namespace baton
