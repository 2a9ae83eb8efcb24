// Every rank of a stages × replicas configuration in this one process (--emulate, and the
// single-rank case): a NetworkWorker per rank over the same model, in-process links and averaging,
// and one executor per rank run in turn. The arithmetic is the distributed run's.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "comm/in_process.hpp"
#include "runtime/app/run_plan.hpp"
#include "runtime/base/timeline.hpp"

namespace baton {

class LocalRun final : public Run {
 public:
  LocalRun(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& parallel,
           const WorkerOptions& common, MinibatchSource* train_data);

  // Training loss and hits are summed over the replicas, in replica order.
  SegmentResult train_segment(const Segment& segment, Timeline* timeline) override;

  // Evaluation through replica 0's stages, a batch of `plan.microbatch` images at a time.
  EpochTotals evaluate(BatchLoader& loader) override;
  std::vector<StageInfo> stage_info() override;
  bool reports() const override { return true; }
  std::vector<NetworkWorker*> local_workers() override;
  comm::Collectives& collectives() override { return *collectives_; }
  void gather_momentum_shards() override;

  NetworkWorker& worker(int rank) { return *workers_[size_t(rank)]; }  // rank s is replica 0's stage s
  int ranks() const { return int(workers_.size()); }

 private:
  RunPlan plan_;
  ParallelConfig parallel_;
  comm::InProcessHub hub_;
  std::vector<std::unique_ptr<NetworkWorker>> workers_;  // by rank
  std::unique_ptr<comm::Collectives> collectives_ = comm::single_process_collectives();
};

}  // namespace baton
