// Implementation of the run plan and of an epoch's schedule.
#include "runtime/app/run_plan.hpp"

#include <algorithm>

#include "runtime/base/error.hpp"
#include "runtime/app/parallel_plan.hpp"
#include "schedulers/builders.hpp"
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

// The most microbatches stage `stage` holds at once under `pipeline`.
int slots_for(Pipeline pipeline, int stage, const ParallelConfig& p) {
  switch (pipeline) {
    case Pipeline::none: return 1;
    case Pipeline::gpipe: return p.microbatches;
    case Pipeline::pipedream:
    case Pipeline::stale: return p.stages - stage;
    case Pipeline::layerpipe: return 2 * (p.stages - 1 - stage) + 1;
    case Pipeline::zero_bubble: {  // its list schedule decides: at most 2K−1−s
      ParallelConfig one = p;
      one.replicas = 1;
      return build_programs(schedule_for(one, pipeline, 1))[size_t(stage)].slots;
    }
  }
  return 1;
}

}  // namespace

RunPlan plan_run(const layers::ModelSpec& model, const ParallelConfig& p, int64_t batch_size, int64_t epochs,
                 const std::vector<layers::NodeCost>& costs, const std::vector<double>& cut_costs) {
  const int64_t shares = int64_t(p.replicas) * p.microbatches;
  BATON_CHECK(batch_size % shares == 0, "--batch-size " << batch_size << " does not split evenly into " << p.replicas
                                                        << " replica(s) x " << p.microbatches
                                                        << " microbatch(es); use a multiple of " << shares);
  RunPlan plan;
  plan.microbatch = batch_size / shares;
  const int nodes = int(model.nodes.size());
  layers::Partition partition =
      p.partition.empty() ? layers::balance_stages(costs, p.stages, 0, cut_costs) : layers::parse_partition(p.partition, model, p.stages);
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
  plan.forward_delays = forward_delays_of(plan, p, pipeline_for_epoch(p, 1, epochs));
  return plan;
}

std::vector<int> part_counts(const RunPlan& plan) {
  std::vector<int> parts;
  for (const auto& stage_parts : plan.parts) parts.push_back(int(stage_parts.size()));
  const bool several = std::any_of(parts.begin(), parts.end(), [](int n) { return n > 1; });
  return several ? parts : std::vector<int>{};
}

std::vector<int64_t> forward_delays_of(const RunPlan& plan, const ParallelConfig& p, Pipeline pipeline) {
  // Long enough for every stage to reach its steady state; every replica beyond two has the same.
  ParallelConfig two = p;
  two.replicas = std::min(p.replicas, 2);
  ScheduleConfig c = schedule_for(two, pipeline, 2 * p.stages + 2, part_counts(plan));
  return schedulers::forward_delays(build_programs(c), c);
}

double stage_bytes(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& parallel,
                   Pipeline pipeline, int stage) {
  const auto [first, last] = plan.stages[size_t(stage)];
  const int slots = plan.slots[size_t(stage)];
  const int64_t delay = plan.forward_delays[size_t(stage)];
  const Mitigations m = mitigations_for(parallel, pipeline, plan.forward_delays)[size_t(stage)];
  const int64_t stashes = pipeline == Pipeline::pipedream ? slots - 1 : 0;
  const int64_t copies = stashes + int64_t(m.predict || m.local) + int64_t(m.local) + (m.dc ? delay + 1 : 0);
  return layers::training_bytes(model, first, last, plan.microbatch, slots, copies);
}

WorkerOptions worker_options_for(int rank, const RunPlan& plan, const ParallelConfig& parallel,
                                 const WorkerOptions& common) {
  const int stage = stage_of(rank, parallel.stages);
  WorkerOptions options = common;
  options.network.batch = plan.microbatch;
  options.network.slots = plan.slots[size_t(stage)];
  if (!common.stage_backends.empty()) options.network.backend = common.stage_backends.at(size_t(stage));
  options.parts = plan.parts[size_t(stage)];
  options.stage = stage;
  options.replica = replica_of(rank, parallel.stages);
  options.replicas = parallel.replicas;
  options.microbatches = parallel.microbatches;
  return options;
}

EpochSchedule schedule_epoch(const RunPlan& plan, const ParallelConfig& parallel, const Segment& segment) {
  const Pipeline pipeline = segment.pipeline.value_or(pipeline_for_epoch(parallel, segment.epoch, segment.epochs));
  ScheduleConfig config = schedule_for(parallel, pipeline, segment.updates, part_counts(plan));
  EpochSchedule schedule;
  schedule.programs = build_programs(config);
  validate(schedule.programs, config);
  const std::vector<int64_t> delays = forward_delays(schedule.programs, config);
  const std::vector<Mitigations> mitigations = mitigations_for(parallel, config.pipeline, delays);
  for (size_t stage = 0; stage < delays.size(); ++stage) {
    const int64_t delay = delays[stage];
    const Mitigations& m = mitigations[stage];
    StageStaleness s;
    s.delay = delay;
    s.lr_scale = m.lr_scale ? 1.0f / float(1 + delay) : 1.0f;
    s.momentum_cut = m.momentum ? float(delay) / float(1 + delay) : 0.0f;
    s.predict = m.predict;
    s.local = m.local;
    s.warmup = m.warmup;
    s.dc_lambda = m.dc ? float(parallel.dc_lambda) : 0.0f;
    schedule.staleness.push_back(s);
  }
  return schedule;
}

}  // namespace baton
