// The `baton` command line: subcommands, their options (Boost.Program_options, grouped for
// --help), INI files through --config (the command line wins), and checks that turn a bad flag
// or value into one sentence that names it and the fix.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/base/tensor.hpp"

namespace baton {

// How the ranks of a run divide the work (DESIGN.md §1): stages × replicas, the pipeline schedule,
// the averaging over replicas. One process can run all of them (--emulate).
struct ParallelConfig {
  int stages = 1;
  int replicas = 1;
  int microbatches = 1;                  // per update; gradients accumulate over them
  std::string pipeline = "none";         // none, gpipe, pipedream, stale, hybrid
  std::string dp = "sync";               // sync, overlap, delayed, sharded
  bool split_backward = false;           // LayerPipe: input gradient sent before the weight gradient
  std::string partition;                 // where stages 2..K begin; empty: balanced by --partition-by
  std::string partition_by = "flops";    // flops, time (each layer measured here), or a cost file (baton profile)
  std::string stage_backends;            // one backend per stage, e.g. "cuda,cpu"; empty: --backend for all
  bool emulate = false;
  int64_t hybrid_switch_epoch = -1;      // hybrid: first gpipe epoch; -1: half of the epochs
  double hybrid_plateau = 0;             // hybrid: > 0 switches after the training loss falls by less than this
  double bucket_mb = 25;                 // gradient bucket size for overlap and sharded averaging
  std::string staleness = "auto";        // mitigations of weight delay: auto, none, or a list (Mitigations)
  double dc_lambda = 0.04;               // dc: lambda of the delay compensation
  std::string timeline;                  // Chrome-trace file of the first epoch
  std::string progress = "thread";       // MPI progress: a communication thread, or poll (between layers)
  double stall_timeout = 60;             // seconds without any progress before the stall report; 0: never
};

// Staleness mitigations, each applied to the stages whose schedule delays their weights (README,
// "Staleness mitigations"). --staleness names them: "none", "auto" (the mode's default), or a
// comma-separated list of lr-scale, momentum, predict, local, dc and warmup.
struct Mitigations {
  bool lr_scale = false, momentum = false, predict = false, local = false, dc = false, warmup = false;
  bool operator==(const Mitigations&) const = default;
};
// The list's mitigations; nullopt for "auto". A name it does not know is an error naming it.
std::optional<Mitigations> parse_mitigations(const std::string& list);

struct TrainConfig {
  // model and data
  std::string model = "lenet5";
  std::string dataset = "fashion-mnist";
  std::string data_dir;
  Dims synthetic_dims;  // empty: the model's natural input
  int synthetic_classes = 0;
  int64_t synthetic_train = 4096, synthetic_test = 1024;
  int pad = 0;  // zero pixels added on every side of every image
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
  bool shuffle = true;                   // --shuffle off keeps the files' order
  // run
  uint64_t seed = 1;
  int threads = 0;  // 0: OpenMP's default
  std::string backend = "cpu";
  int device = -1;  // --device: the CUDA device of --backend cuda; -1: from the launcher's local rank
  double max_memory_gib = 0;             // what data, model and activations may claim; 0: see memory_limit()
  std::string metrics;
  int64_t log_every = 0;                 // a step event every N updates; 0: none
  std::string tensorboard;               // a folder for TensorBoard event files; "" for none
  ParallelConfig parallel;
  // checkpoints
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;          // updates; 0: at epoch ends only
  int keep_checkpoints = 2;
  bool resume = false;                   // from the newest complete checkpoint in checkpoint_dir
  int64_t stop_after_updates = 0;        // checkpoint and stop at the first checkpoint point from here on
  std::string init_from;                 // safetensors weights to start from (when not resuming)
};

struct BenchConfig {
  std::string model = "resnet20";
  int64_t batch_size = 128;  // the whole job's, split over replicas and microbatches
  int threads = 1;
  int64_t iterations = 20;   // updates per timed program
  int64_t warmup = 3;
  int64_t repeats = 3;       // timed programs; the median is reported
  std::string measure = "step";  // step, comm (only the averaging), compute (replicas without averaging)
  std::string backend = "cpu";
  int device = -1;  // --device: the CUDA device of --backend cuda; -1: from the launcher's local rank
  double max_memory_gib = 0;
  uint64_t seed = 1;
  ParallelConfig parallel;
};

struct ExportCommand {
  std::string checkpoint_dir;  // a --checkpoint-dir (its newest usable checkpoint) or one step-* folder
  std::string output;
};

struct ScheduleCommand {
  ParallelConfig parallel;
  int64_t steps = 4;  // updates shown
};

// `baton profile`: per-layer times of a model at the microbatch sizes batch_size / count.
struct ProfileCommand {
  std::string model = "resnet20";
  int64_t batch_size = 128;
  std::vector<int64_t> microbatches{1};  // counts: each measures microbatches of batch_size / count images
  int64_t repeats = 5;                   // timed passes per size (the median is kept)
  int threads = 1;
  std::string backend = "cpu";
  int device = -1;  // --device: the CUDA device of --backend cuda; -1: from the launcher's local rank
  double max_memory_gib = 0;
  uint64_t seed = 1;
  std::string output;                    // the cost file; "" prints the table only
  bool network = false;                  // calibrate the network model instead (under mpirun)
};

// `baton simulate`: the programs `baton bench` would run with these options, played against a
// cost file and a network model; or (search) every configuration that fits the world.
struct SimulateCommand {
  std::string model = "resnet20";
  int64_t batch_size = 128;
  int64_t iterations = 20;   // updates in the simulated program, as bench times them
  ParallelConfig parallel;
  std::string costs;         // from baton profile (required)
  std::string network;       // a network file; "" for the defaults (README)
  int nodes = 0;             // 0: as many as the ranks need at ranks_per_node
  int ranks_per_node = 0;    // 0: every rank on one node, or ranks / nodes
  int cores_per_node = 0;    // 0: the network file's, else a core for each rank's threads
  bool search = false;
  double memory_per_rank_gib = 0;  // search: configurations over it are left out; 0: no limit
};

enum class Command { train, bench, models, schedule, export_model, profile, simulate, help, version };

struct Invocation {
  Command command = Command::help;
  TrainConfig train;
  BenchConfig bench;
  ScheduleCommand schedule;
  ExportCommand export_model;
  ProfileCommand profile;
  SimulateCommand simulate;
  std::string help_text;  // for Command::help
};

Invocation parse_command_line(int argc, const char* const argv[]);

}  // namespace baton
