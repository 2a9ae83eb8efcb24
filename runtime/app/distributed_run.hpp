// One rank of a stages × replicas configuration over MPI: this rank's NetworkWorker, the MPI link
// and averager behind its executor, progress by polling (between layers and instructions) or by a
// communication thread, a stall inspector, and evaluation through replica 0's stages. Every rank
// builds the same programs as the one-process run, so the arithmetic is the same.
#pragma once

#include <memory>

#include "comm/engine.hpp"
#include "comm/mpi_averager.hpp"
#include "comm/mpi_link.hpp"
#include "comm/topology.hpp"
#include "runtime/app/run_plan.hpp"
#include "runtime/base/timeline.hpp"

namespace baton {

class DistributedRun final : public Run {
 public:
  DistributedRun(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& parallel,
                 const WorkerOptions& common, MinibatchSource* train_data, comm::Topology& topology,
                 comm::Progress progress, double stall_timeout_seconds);

  // The totals are summed over the last stage's ranks and valid on world rank 0. With a timeline,
  // rank 0's receives every rank's instructions.
  SegmentResult train_segment(const Segment& segment, Timeline* timeline) override;
  EpochTotals evaluate(BatchLoader& loader) override;
  std::vector<StageInfo> stage_info() override;
  bool reports() const override { return topology_.rank() == 0; }
  std::vector<NetworkWorker*> local_workers() override { return {worker_.get()}; }
  comm::Collectives& collectives() override { return *collectives_; }
  void gather_momentum_shards() override;
  // Seconds to average this stage's whole gradient over its replicas once (median of `times`).
  double average_seconds(int times);

  NetworkWorker& worker() { return *worker_; }
  const comm::Topology& topology() const { return topology_; }

 private:
  void run(schedulers::Executor& executor);
  void stalled(const schedulers::Executor& executor, double seconds);
  EpochTotals reduce(const EpochTotals& mine) const;
  SegmentResult gather_updates(int64_t updates) const;
  void gather_timeline(const Timeline& local, Timeline* into) const;

  const ParallelConfig& parallel_;
  const RunPlan& plan_;
  comm::Topology& topology_;
  std::unique_ptr<comm::Engine> engine_;
  std::unique_ptr<NetworkWorker> worker_;
  std::unique_ptr<comm::MpiLink> link_;
  std::unique_ptr<comm::MpiAverager> averager_;
  std::unique_ptr<comm::Collectives> collectives_;
  double stall_timeout_;
};

}  // namespace baton
