// The top of baton: turns a parsed command into a run — training with per-epoch evaluation,
// the step benchmark, and the model listing. Rank 0 prints; --metrics writes JSON lines.
#pragma once

#include <ostream>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/layer.hpp"
#include "runtime/app/cli.hpp"

namespace baton {

struct EpochStats {
  int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0, test_loss = 0, test_accuracy = 0;
  double images_per_sec = 0, seconds = 0;
};

struct TrainingOutcome {
  std::vector<EpochStats> history;
  bool stopped = false;  // checkpointed and stopped before the end (a signal, --stop-after-updates)
};

// Exit status of a run that checkpointed and stopped early: run it again with --resume.
constexpr int kStoppedExitStatus = 75;

TrainingOutcome run_training(const TrainConfig& config);

// One JSON object: model, batch_size, threads, median_step_ms, images_per_sec, gflops.
nlohmann::json run_bench(const BenchConfig& config);

void print_model_zoo(std::ostream& out);

// Shared by the commands that build networks: --backend's kernels (for cuda, on --device, or the
// launcher's local rank when it is -1; one sentence when no device is usable), --threads (0 leaves OpenMP's
// default), the threads kernels will use, and --max-memory in bytes (0 GiB: 90 % of this
// machine's or job's memory, shared by the MPI ranks on it).
layers::Backend parse_backend(const std::string& name, int device);
// --stage-backends: one backend per stage (empty for an empty list). A GPU stage computes on the
// device of the launcher's local rank, chosen when its network is built.
std::vector<layers::Backend> parse_stage_backends(const std::string& list, int stages);
void set_threads(int threads);
int omp_threads();
int world_size();  // processes in MPI_COMM_WORLD
int ranks_on_this_node();  // of them, those sharing this one's node (collective)
int64_t memory_limit(double gib);

}  // namespace baton
