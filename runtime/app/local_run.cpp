// Implementation of LocalRun.
#include "runtime/app/local_run.hpp"

#include <algorithm>

#include "runtime/base/error.hpp"
#include "schedulers/builders.hpp"
#include "schedulers/executor.hpp"

namespace baton {

using namespace schedulers;

LocalRun::LocalRun(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& parallel,
                   const WorkerOptions& common, MinibatchSource* train_data)
    : plan_(plan), parallel_(parallel),
      hub_(parallel.stages, parallel.replicas, parallel.dp == "sharded") {
  for (int rank = 0; rank < parallel.stages * parallel.replicas; ++rank) {
    const int stage = stage_of(rank, parallel.stages);
    const bool reads_data = stage == 0 || stage == parallel.stages - 1;
    auto [first, last] = plan.stages[size_t(stage)];
    workers_.push_back(std::make_unique<NetworkWorker>(model, first, last,
                                                       worker_options_for(rank, plan, parallel, common),
                                                       reads_data ? train_data : nullptr));
  }
}

SegmentResult LocalRun::train_segment(const Segment& segment, Timeline* timeline) {
  EpochSchedule schedule = schedule_epoch(plan_, parallel_, segment);
  const std::vector<Program>& programs = schedule.programs;
  std::vector<Executor> executors;
  for (size_t r = 0; r < workers_.size(); ++r) {
    workers_[r]->begin_segment(segment, schedule.staleness[size_t(programs[r].stage)]);
    executors.emplace_back(programs[r], *workers_[r], hub_.link(int(r)), hub_.averager(int(r)), timeline);
    if (timeline) {
      timeline->name_row(int(r), "rank " + std::to_string(r) + ": stage " + std::to_string(programs[r].stage) +
                                     ", replica " + std::to_string(programs[r].replica));
    }
  }
  run_in_turn(executors);
  BATON_CHECK(hub_.idle(), "epoch " << segment.epoch << " ended a segment with messages or averages left undelivered");
  SegmentResult result;
  result.update_loss_sums.assign(size_t(segment.updates), 0.0);
  const int last_stage = parallel_.stages - 1;
  result.update_seconds = workers_[size_t(last_stage)]->update_seconds();
  for (int replica = 0; replica < parallel_.replicas; ++replica) {
    const NetworkWorker& last = *workers_[size_t(rank_of(last_stage, replica, parallel_.stages))];
    result.totals.add(last);
    for (size_t u = 0; u < result.update_loss_sums.size(); ++u) result.update_loss_sums[u] += last.update_loss_sums()[u];
  }
  return result;
}

std::vector<NetworkWorker*> LocalRun::local_workers() {
  std::vector<NetworkWorker*> all;
  for (auto& worker : workers_) all.push_back(worker.get());
  return all;
}

// Each replica's shard of every bucket's momentum goes to all replicas of its stage.
void LocalRun::gather_momentum_shards() {
  if (parallel_.dp != "sharded" || parallel_.replicas == 1) return;
  for (int rank = 0; rank < int(workers_.size()); ++rank) {
    NetworkWorker& owner = *workers_[size_t(rank)];
    for (int part = 0; part < owner.parts(); ++part) {
      std::span<const float> mine = owner.momentum(part);
      auto [begin, end] = hub_.averager(rank).shard(mine.size());
      for (int replica = 0; replica < parallel_.replicas; ++replica) {
        if (replica == owner.replica()) continue;
        std::span<float> theirs = workers_[size_t(rank_of(owner.stage(), replica, parallel_.stages))]->momentum(part);
        std::copy(mine.begin() + long(begin), mine.begin() + long(end), theirs.begin() + long(begin));
      }
    }
  }
}

std::vector<StageInfo> LocalRun::stage_info() {
  std::vector<StageInfo> info;
  for (int s = 0; s < parallel_.stages; ++s) {
    const layers::Network& net = workers_[size_t(s)]->network();
    info.push_back({net.param_count(), int64_t(net.activation_bytes())});
  }
  return info;
}

EpochTotals LocalRun::evaluate(BatchLoader& loader) {
  EpochTotals totals;
  Batch batch;
  loader.start_epoch(0);
  const int stages = parallel_.stages;
  while (loader.next(batch)) {
    layers::Network& first = workers_[0]->network();
    std::copy(batch.images.begin(), batch.images.end(), first.input(0, 0).data());
    layers::Network& last = workers_[size_t(stages - 1)]->network();
    std::copy(batch.labels.begin(), batch.labels.end(), last.labels(0));
    for (int s = 0; s < stages; ++s) {
      layers::Network& net = workers_[size_t(s)]->network();
      net.forward(0, layers::Phase::eval, 0, workers_[size_t(s)]->current_weights());
      if (s + 1 == stages) break;
      layers::Network& next = workers_[size_t(s + 1)]->network();
      for (size_t i = 0; i < net.leaving().size(); ++i) {
        const Tensor& out = net.output(0, i);
        std::copy(out.data(), out.data() + out.numel(), next.input(0, i).data());
      }
    }
    totals.loss += last.loss_sum(0, batch.count);
    totals.hits += last.correct(0, batch.count);
    totals.images += batch.count;
  }
  return totals;
}

}  // namespace baton
