// Every rank of a stages × replicas configuration in this one process (--emulate, and the
// single-rank case): a NetworkWorker per rank over the same model, in-process links and averaging,
// and one executor per rank run in turn. The arithmetic is the distributed run's.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "comm/in_process.hpp"
#include "layers/partition.hpp"
#include "runtime/cli.hpp"
#include "runtime/network_worker.hpp"
#include "runtime/timeline.hpp"

namespace baton {

// How a configuration maps onto the model: stage node ranges, gradient buckets, slots.
struct RunPlan {
  std::vector<std::pair<int, int>> stages;           // [first, last) nodes per stage
  std::vector<std::vector<layers::NodeRange>> parts;  // gradient buckets per stage, in the stage's nodes
  std::vector<int> slots;                            // per stage: the most microbatches in flight
  int64_t microbatch = 1;                            // images per microbatch per replica
  std::vector<int64_t> forward_delays;               // per stage, in the first epoch's schedule
};

// Checks the configuration against the model and the batch (one sentence per problem).
RunPlan plan_run(const layers::ModelSpec& model, const ParallelConfig& parallel, int64_t batch_size, int64_t epochs);

struct EpochTotals {
  double loss = 0;
  int64_t hits = 0, images = 0;
  double mean_loss() const { return images ? loss / double(images) : 0.0; }
  double accuracy() const { return images ? double(hits) / double(images) : 0.0; }
};

class LocalRun {
 public:
  LocalRun(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& parallel,
           const WorkerOptions& common, MinibatchSource* train_data);

  // Trains one epoch (1-based) of `steps` updates with the schedule's pipeline; returns the
  // training loss and hits summed over replicas. The timeline, if given, records every instruction.
  EpochTotals train_epoch(int64_t epoch, int64_t epochs, int64_t steps, int64_t updates_before, Timeline* timeline);

  // Evaluation through replica 0's stages, a batch of `plan.microbatch` images at a time.
  EpochTotals evaluate(BatchLoader& loader);

  NetworkWorker& worker(int stage) { return *workers_[size_t(stage)]; }  // replica 0's
  int ranks() const { return int(workers_.size()); }

 private:
  const layers::ModelSpec& model_;
  RunPlan plan_;
  ParallelConfig parallel_;
  comm::InProcessHub hub_;
  std::vector<std::unique_ptr<NetworkWorker>> workers_;  // by rank
};

}  // namespace baton
