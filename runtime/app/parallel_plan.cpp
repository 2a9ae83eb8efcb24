// Implementation of the per-epoch schedule choice and of `baton schedule`.
#include "runtime/app/parallel_plan.hpp"

#include <algorithm>
#include <iomanip>
#include <ostream>

#include "runtime/base/error.hpp"
#include "runtime/base/timeline.hpp"
#include "schedulers/simulator.hpp"
#include "schedulers/validate.hpp"

namespace baton {

using namespace schedulers;

Pipeline pipeline_for_epoch(const ParallelConfig& p, int64_t epoch, int64_t epochs) {
  if (p.pipeline != "hybrid") return parse_pipeline(p.pipeline);
  // With --hybrid-plateau and no switch epoch given, only the run's losses end the stale epochs.
  const int64_t switch_epoch = p.hybrid_switch_epoch > 0 ? p.hybrid_switch_epoch
                               : p.hybrid_plateau > 0    ? epochs + 1
                                                         : epochs / 2 + 1;
  return epoch < switch_epoch ? Pipeline::stale : Pipeline::gpipe;
}

Pipeline EpochPipelines::of(int64_t epoch) const {
  if (plateau_switch_epoch_ > 0 && epoch >= plateau_switch_epoch_) return Pipeline::gpipe;
  return pipeline_for_epoch(p_, epoch, epochs_);
}

bool EpochPipelines::switch_after(int64_t epoch, double loss, const std::function<bool(bool)>& agree) {
  if (p_.pipeline != "hybrid" || p_.hybrid_plateau <= 0 || plateau_switch_epoch_ > 0 || epoch >= epochs_ ||
      of(epoch + 1) != Pipeline::stale)
    return false;
  const bool plateau = last_loss_ > 0 && loss > (1 - p_.hybrid_plateau) * last_loss_;
  last_loss_ = loss;
  if (!agree(plateau)) return false;
  plateau_switch_epoch_ = epoch + 1;
  return true;
}

void EpochPipelines::restore(int64_t plateau_switch_epoch, double last_loss) {
  plateau_switch_epoch_ = plateau_switch_epoch;
  last_loss_ = last_loss;
}

// auto slows the delayed stages only when a stage is more than this many updates behind: up to it,
// prediction and warm-up alone keep LeNet-5 within 0.2 points; beyond it they diverge (README).
constexpr int64_t kAutoLrScaleAboveDelay = 3;

std::vector<Mitigations> mitigations_for(const ParallelConfig& p, Pipeline pipeline,
                                         const std::vector<int64_t>& forward_delays) {
  Mitigations m;
  if (std::optional<Mitigations> chosen = parse_mitigations(p.staleness)) {
    m = *chosen;
  } else {
    const int64_t largest_delay = *std::max_element(forward_delays.begin(), forward_delays.end());
    m.predict = m.warmup = updates_every_microbatch(pipeline);
    m.lr_scale = m.predict && largest_delay > kAutoLrScaleAboveDelay;
    m.local = parse_averaging(p.dp) == Averaging::delayed;
  }
  std::vector<Mitigations> of_stage;
  for (int64_t delay : forward_delays) of_stage.push_back(delay > 0 ? m : Mitigations{});
  return of_stage;
}

std::string to_string(const Mitigations& m) {
  std::string names;
  for (auto [on, name] : {std::pair{m.lr_scale, "lr-scale"}, {m.momentum, "momentum"}, {m.predict, "predict"}, {m.local, "local"},
                          {m.dc, "dc"}, {m.warmup, "warmup"}})
    if (on) names += (names.empty() ? "" : ",") + std::string(name);
  return names.empty() ? "none" : names;
}

ScheduleConfig schedule_for(const ParallelConfig& p, Pipeline pipeline, int64_t steps, std::vector<int> parts) {
  ScheduleConfig c;
  c.stages = p.stages;
  c.replicas = p.replicas;
  c.microbatches = p.microbatches;
  c.steps = steps;
  c.pipeline = pipeline;
  c.averaging = parse_averaging(p.dp);
  c.split_backward = p.split_backward;
  c.parts = std::move(parts);
  check_config(c);
  return c;
}

namespace {

bool is_compute(const Instruction& i) {
  return std::holds_alternative<Forward>(i) || std::holds_alternative<BackwardData>(i) ||
         std::holds_alternative<BackwardWeights>(i);
}

// One row per unit of time, one column per rank: what each rank computes then ("." idle).
void print_diagram(const std::vector<Program>& programs, const Simulation& sim, std::ostream& out) {
  const int rows = int(sim.makespan + 0.5);
  std::vector<std::vector<std::string>> cells(size_t(rows), std::vector<std::string>(programs.size(), "."));
  for (const Program& p : programs) {
    for (size_t k = 0; k < p.instructions.size(); ++k) {
      const Span& span = sim.spans[size_t(p.rank)][k];
      if (!is_compute(p.instructions[k]) || span.end <= span.start) continue;
      const std::string text = to_string(p.instructions[k]);
      cells[size_t(span.start)][size_t(p.rank)] = text.substr(0, text.find(' '));
    }
  }
  out << "  time";
  for (const Program& p : programs) out << std::setw(8) << ("r" + std::to_string(p.rank));
  out << "\n";
  for (int t = 0; t < rows; ++t) {
    out << std::setw(6) << t;
    for (const std::string& cell : cells[size_t(t)]) out << std::setw(8) << cell;
    out << "\n";
  }
}

void write_timeline(const std::vector<Program>& programs, const Simulation& sim, const std::string& path) {
  Timeline timeline;
  constexpr double unit_us = 1000;  // one unit of cost shows as a millisecond
  for (const Program& p : programs) {
    timeline.name_row(p.rank, "rank " + std::to_string(p.rank) + ": stage " + std::to_string(p.stage) + ", replica " +
                                  std::to_string(p.replica));
    for (size_t k = 0; k < p.instructions.size(); ++k) {
      const Span& span = sim.spans[size_t(p.rank)][k];
      timeline.add(p.rank, to_string(p.instructions[k]), is_compute(p.instructions[k]) ? "compute" : "other",
                   span.start * unit_us, span.end * unit_us);
    }
  }
  timeline.write(path);
}

}  // namespace

void print_schedule(const ScheduleCommand& command, std::ostream& out) {
  const ParallelConfig& p = command.parallel;
  BATON_CHECK(p.pipeline != "hybrid",
              "hybrid runs stale epochs, then gpipe ones; show each with --pipeline stale or --pipeline gpipe");
  ScheduleConfig config = schedule_for(p, parse_pipeline(p.pipeline), command.steps);
  std::vector<Program> programs = build_programs(config);
  validate(programs, config);
  Simulation sim = simulate(programs, unit_costs());
  std::vector<int64_t> delays = forward_delays(programs, config);

  out << "schedule: " << name_of(config.pipeline) << ", " << config.stages << " stage(s) x " << config.replicas
      << " replica(s), " << config.microbatches << " microbatch(es) per update, " << config.steps << " update(s), "
      << name_of(config.averaging) << " averaging" << (config.split_backward ? ", split backward" : "") << "\n";
  out << "forward weight delay per stage:";
  for (int64_t d : delays) out << " " << d;
  out << "\nat unit costs (forward, data gradient, weight gradient: 1 each): makespan " << sim.makespan << ", idle";
  for (size_t r = 0; r < programs.size(); ++r) out << " " << std::fixed << std::setprecision(1) << 100 * sim.idle_fraction(int(r)) << "%";
  out << "\n\n";
  print_diagram(programs, sim, out);
  for (const Program& program : programs) {
    out << "\nrank " << program.rank << " (stage " << program.stage << ", replica " << program.replica << "), "
        << program.slots << " slot(s):\n ";
    for (const Instruction& i : program.instructions) out << " " << to_string(i) << ";";
    out << "\n";
  }
  if (!p.timeline.empty()) {
    write_timeline(programs, sim, p.timeline);
    out << "\ntimeline written to " << p.timeline << " (open it in https://ui.perfetto.dev)\n";
  }
}

}  // namespace baton
