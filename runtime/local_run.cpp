// Implementation of the run plan and of LocalRun.
#include "runtime/local_run.hpp"

#include <algorithm>

#include "runtime/error.hpp"
#include "runtime/parallel_plan.hpp"
#include "schedulers/executor.hpp"
#include "schedulers/validate.hpp"

namespace baton {

using namespace schedulers;

namespace {

// Splits a stage's nodes into gradient buckets of about `bucket_bytes` of parameters each.
std::vector<layers::NodeRange> buckets(const std::vector<layers::NodeCost>& costs, std::pair<int, int> stage,
                                       double bucket_bytes) {
  std::vector<layers::NodeRange> parts;
  int begin = 0;
  double filled = 0;
  const int nodes = stage.second - stage.first;
  for (int i = 0; i < nodes; ++i) {
    filled += double(costs[size_t(stage.first + i)].param_bytes);
    if (filled >= bucket_bytes && i + 1 < nodes) {
      parts.push_back({begin, i + 1});
      begin = i + 1;
      filled = 0;
    }
  }
  parts.push_back({begin, nodes});
  return parts;
}

// Gradient buckets per stage, as the schedule builders take them (empty: one each).
std::vector<int> part_counts(const RunPlan& plan) {
  std::vector<int> parts;
  for (const auto& stage_parts : plan.parts) parts.push_back(int(stage_parts.size()));
  const bool several = std::any_of(parts.begin(), parts.end(), [](int n) { return n > 1; });
  return several ? parts : std::vector<int>{};
}

// The most microbatches stage `stage` holds at once under `pipeline`.
int slots_for(Pipeline pipeline, int stage, const ParallelConfig& p) {
  switch (pipeline) {
    case Pipeline::none: return 1;
    case Pipeline::gpipe: return p.microbatches;
    case Pipeline::pipedream:
    case Pipeline::stale: return p.stages - stage;
  }
  return 1;
}

}  // namespace

RunPlan plan_run(const layers::ModelSpec& model, const ParallelConfig& p, int64_t batch_size, int64_t epochs) {
  const int64_t shares = int64_t(p.replicas) * p.microbatches;
  BATON_CHECK(batch_size % shares == 0, "--batch-size " << batch_size << " does not split evenly into " << p.replicas
                                                        << " replica(s) x " << p.microbatches
                                                        << " microbatch(es); use a multiple of " << shares);
  RunPlan plan;
  plan.microbatch = batch_size / shares;
  const int nodes = int(model.nodes.size());
  std::vector<layers::NodeCost> costs = layers::node_costs(model);
  layers::Partition partition =
      p.partition.empty() ? layers::balance_stages(costs, p.stages) : layers::parse_partition(p.partition, model, p.stages);
  plan.stages = layers::stage_ranges(partition, nodes);
  const bool bucketed = p.replicas > 1 && (p.dp == "overlap" || p.dp == "sharded");
  for (int s = 0; s < p.stages; ++s) {
    plan.parts.push_back(bucketed ? buckets(costs, plan.stages[size_t(s)], p.bucket_mb * 1e6)
                                  : std::vector<layers::NodeRange>{{0, -1}});
    int slots = 1;
    for (int64_t epoch : {int64_t(1), epochs})
      slots = std::max(slots, slots_for(pipeline_for_epoch(p, epoch, epochs), s, p));
    plan.slots.push_back(slots);
  }
  // Long enough for every stage to reach its steady state.
  ScheduleConfig first = schedule_for(p, pipeline_for_epoch(p, 1, epochs), 2 * p.stages + 2, part_counts(plan));
  plan.forward_delays = schedulers::forward_delays(build_programs(first), first);
  return plan;
}

LocalRun::LocalRun(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& parallel,
                   const WorkerOptions& common, MinibatchSource* train_data)
    : model_(model), plan_(plan), parallel_(parallel),
      hub_(parallel.stages, parallel.replicas, parallel.dp == "sharded") {
  for (int rank = 0; rank < parallel.stages * parallel.replicas; ++rank) {
    const int stage = stage_of(rank, parallel.stages);
    WorkerOptions options = common;
    options.network.batch = plan.microbatch;
    options.network.slots = plan.slots[size_t(stage)];
    options.parts = plan.parts[size_t(stage)];
    options.replica = replica_of(rank, parallel.stages);
    options.replicas = parallel.replicas;
    options.microbatches = parallel.microbatches;
    const bool reads_data = stage == 0 || stage == parallel.stages - 1;
    auto [first, last] = plan.stages[size_t(stage)];
    workers_.push_back(std::make_unique<NetworkWorker>(model, first, last, options, reads_data ? train_data : nullptr));
  }
}

EpochTotals LocalRun::train_epoch(int64_t epoch, int64_t epochs, int64_t steps, int64_t updates_before,
                                  Timeline* timeline) {
  ScheduleConfig config = schedule_for(parallel_, pipeline_for_epoch(parallel_, epoch, epochs), steps, part_counts(plan_));
  std::vector<Program> programs = build_programs(config);
  validate(programs, config);
  const std::vector<int64_t> delays = schedulers::forward_delays(programs, config);
  const bool scaled = parallel_.staleness == "lr-scale" &&
                      (config.pipeline == Pipeline::stale || config.pipeline == Pipeline::pipedream);
  std::vector<Executor> executors;
  for (size_t r = 0; r < workers_.size(); ++r) {
    const int64_t delay = delays[size_t(programs[r].stage)];
    workers_[r]->begin_epoch(epoch, updates_before, scaled ? 1.0f / float(1 + delay) : 1.0f);
    executors.emplace_back(programs[r], *workers_[r], hub_.link(int(r)), hub_.averager(int(r)), timeline);
    if (timeline) {
      timeline->name_row(int(r), "rank " + std::to_string(r) + ": stage " + std::to_string(programs[r].stage) +
                                     ", replica " + std::to_string(programs[r].replica));
    }
  }
  run_in_turn(executors);
  BATON_CHECK(hub_.idle(), "epoch " << epoch << " ended with messages or averages left undelivered");
  EpochTotals totals;
  for (const Program& p : programs) {
    if (p.stage != parallel_.stages - 1) continue;
    const NetworkWorker& w = *workers_[size_t(p.rank)];
    totals.loss += w.loss_sum();
    totals.hits += w.hits();
    totals.images += w.images();
  }
  return totals;
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
