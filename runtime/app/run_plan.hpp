// How a stages × replicas configuration maps onto a model and an epoch: stage node ranges,
// gradient buckets and slots (RunPlan), each rank's worker options, and an epoch's validated
// programs with the learning-rate scale of each stage. Shared by one-process and MPI runs.
#pragma once

#include <utility>
#include <vector>

#include "layers/partition.hpp"
#include "comm/collectives.hpp"
#include "runtime/app/cli.hpp"
#include "runtime/app/network_worker.hpp"
#include "runtime/base/timeline.hpp"
#include "schedulers/instruction.hpp"

namespace baton {

struct RunPlan {
  std::vector<std::pair<int, int>> stages;           // [first, last) nodes per stage
  std::vector<std::vector<layers::NodeRange>> parts;  // gradient buckets per stage, in the stage's nodes
  std::vector<int> slots;                            // per stage: the most microbatches in flight
  int64_t microbatch = 1;                            // images per microbatch per replica
  std::vector<int64_t> forward_delays;               // per stage, in the first epoch's schedule
};

// Checks the configuration against the model and the batch (one sentence per problem). Without
// --partition, stages balance `costs` (node_costs() FLOPs, or measured seconds), plus `cut_costs`
// when given (see layers::balance_stages).
RunPlan plan_run(const layers::ModelSpec& model, const ParallelConfig& parallel, int64_t batch_size, int64_t epochs,
                 const std::vector<layers::NodeCost>& costs, const std::vector<double>& cut_costs = {});

// Gradient buckets per stage, as the schedule builders take them (empty: one each).
std::vector<int> part_counts(const RunPlan& plan);

// Per stage, the forward delay its schedule gives with this pipeline (hybrid changes it).
std::vector<int64_t> forward_delays_of(const RunPlan& plan, const ParallelConfig& parallel,
                                       schedulers::Pipeline pipeline);

// An estimate, before anything is allocated, of the bytes a rank of `stage` claims when its first
// epoch runs `pipeline`: training_bytes (weights, gradient, optimizer state, slots), PipeDream's
// stashed weight versions, and the buffers of the staleness mitigations the stage applies: the
// weights its passes use (predict, local), the replica's own gradient (local) and dc's weights per
// update in flight.
double stage_bytes(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& parallel,
                   schedulers::Pipeline pipeline, int stage);

// The worker options of world rank `rank` (stage rank % K of replica rank / K).
WorkerOptions worker_options_for(int rank, const RunPlan& plan, const ParallelConfig& parallel,
                                 const WorkerOptions& common);

struct EpochSchedule {
  std::vector<schedulers::Program> programs;  // every rank's, validated
  std::vector<StageStaleness> staleness;      // per stage: its delay and mitigations
};
EpochSchedule schedule_epoch(const RunPlan& plan, const ParallelConfig& parallel, const Segment& segment);

struct EpochTotals {
  double loss = 0;
  int64_t hits = 0, images = 0;
  double mean_loss() const { return images ? loss / double(images) : 0.0; }
  double accuracy() const { return images ? double(hits) / double(images) : 0.0; }
  void add(const EpochTotals& other) {
    loss += other.loss;
    hits += other.hits;
    images += other.images;
  }
  void add(const NetworkWorker& last_stage) {
    loss += last_stage.loss_sum();
    hits += last_stage.hits();
    images += last_stage.images();
  }
};

// Per stage, what the start line and the config event report (valid on world rank 0).
struct StageInfo {
  int64_t params = 0;
  int64_t activation_bytes = 0;
};

// What a segment's training produced, valid on world rank 0: the totals, and per update the loss
// summed over its whole minibatch (all microbatches and replicas, in replica order) and when
// replica 0's last stage had it, in seconds since the segment began.
struct SegmentResult {
  EpochTotals totals;
  std::vector<double> update_loss_sums;
  std::vector<double> update_seconds;
};

// A configuration at work: all ranks in this process (LocalRun) or this rank of an MPI job
// (DistributedRun). Totals and stage information are valid on world rank 0.
class Run {
 public:
  virtual ~Run() = default;
  // Trains one segment with its epoch's pipeline; the timeline, if given, records every instruction.
  virtual SegmentResult train_segment(const Segment& segment, Timeline* timeline) = 0;
  virtual EpochTotals evaluate(BatchLoader& loader) = 0;  // replica 0's stages, one microbatch at a time
  virtual std::vector<StageInfo> stage_info() = 0;
  virtual bool reports() const = 0;                     // this process prints and writes metrics

  // For checkpoints: the workers of this process, the job-wide collectives, and a gather that gives
  // every replica the whole momentum where sharded averaging left each replica only its shard.
  virtual std::vector<NetworkWorker*> local_workers() = 0;
  virtual comm::Collectives& collectives() = 0;
  virtual void gather_momentum_shards() = 0;
};

}  // namespace baton
