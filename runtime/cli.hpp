// The `baton` command line: subcommands, their options (Boost.Program_options, grouped for
// --help), INI files through --config (the command line wins), and checks that turn a bad flag
// or value into one sentence that names it and the fix.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.hpp"

namespace baton {

struct TrainConfig {
  // model and data
  std::string model = "lenet5";
  std::string dataset = "fashion-mnist";
  std::string data_dir;
  Dims synthetic_dims;  // empty: the model's natural input
  int synthetic_classes = 0;
  int64_t synthetic_train = 4096, synthetic_test = 1024;
  // optimisation
  int64_t epochs = 10;
  int64_t batch_size = 64;
  float lr = 0.05f;
  float momentum = 0.9f;
  bool nesterov = false;
  float weight_decay = 5e-4f;
  std::string lr_schedule = "cosine";
  std::vector<int64_t> lr_milestones;  // epochs, for the step schedule
  float lr_gamma = 0.1f;
  double warmup_epochs = 0;
  // run
  uint64_t seed = 1;
  int threads = 0;  // 0: OpenMP's default
  std::string backend = "cpu";
  std::string metrics;
};

struct BenchConfig {
  std::string model = "resnet20";
  int64_t batch_size = 128;
  int threads = 1;
  int64_t iterations = 20;
  int64_t warmup = 3;
  std::string backend = "cpu";
  uint64_t seed = 1;
};

enum class Command { train, bench, models, help, version };

struct Invocation {
  Command command = Command::help;
  TrainConfig train;
  BenchConfig bench;
  std::string help_text;  // for Command::help
};

Invocation parse_command_line(int argc, const char* const argv[]);

}  // namespace baton
