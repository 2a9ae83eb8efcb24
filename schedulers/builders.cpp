// The program builders. One RankBuilder per rank emits its instructions in order and tracks what
// the executor will see (weight version per part, stashed versions, averaging in flight), so every
// Forward and BackwardData carries the version its mode prescribes.
#include "schedulers/builders.hpp"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <set>

#include "runtime/base/error.hpp"

namespace baton::schedulers {
namespace {

class RankBuilder {
 public:
  RankBuilder(const ScheduleConfig& config, int stage, int replica)
      : c_(config), stage_(stage), replica_(replica), parts_(config.parts.empty() ? 1 : config.parts[stage]) {
    versions_.assign(size_t(parts_), 0);
    before_next_pass_.resize(size_t(parts_));
    program_.rank = rank_of(stage, replica, config.stages);
    program_.stage = stage;
    program_.replica = replica;
    program_.parts = parts_;
  }

  void forward(int64_t microbatch, int slot) {
    if (stage_ > 0) emit(RecvActivation{microbatch, slot, neighbour(-1)});
    if (first_stage() || last_stage()) emit(LoadBatch{microbatch, slot});
    for (int p = 0; p < parts_; ++p) {
      flush_deferred(p);
      emit(Forward{microbatch, slot, p, versions_[p]});
    }
    if (c_.pipeline == Pipeline::pipedream && !last_stage()) {
      emit(StashWeights{microbatch});
      stashed_[microbatch] = versions_;
    }
    if (!last_stage()) emit(SendActivation{microbatch, slot, neighbour(+1)});
    program_.slots = std::max(program_.slots, slot + 1);
  }

  // The data gradient of every part, sent on at once; the weight gradients follow with weights().
  void backward_data(int64_t microbatch, int slot) {
    if (!last_stage()) emit(RecvGrad{microbatch, slot, neighbour(+1)});
    for (int p = parts_ - 1; p >= 0; --p) flush_deferred(p);  // the newest weights before a backward
    for (int p = parts_ - 1; p >= 0; --p) emit(BackwardData{microbatch, slot, p, versions_[p]});
    if (stage_ > 0) emit(SendGrad{microbatch, slot, neighbour(-1)});
  }

  void weights(int64_t microbatch, int slot) {
    for (int p = parts_ - 1; p >= 0; --p) weights_of(microbatch, slot, p);
  }

  void backward(int64_t microbatch, int slot) {
    if (!last_stage()) emit(RecvGrad{microbatch, slot, neighbour(+1)});
    for (int p = parts_ - 1; p >= 0; --p) flush_deferred(p);  // 1F1B: the newest weights before a backward
    auto stash = stashed_.find(microbatch);
    const std::vector<int64_t> versions = stash == stashed_.end() ? versions_ : stash->second;
    if (stash != stashed_.end()) stashed_.erase(stash);
    for (int p = parts_ - 1; p >= 0; --p) {
      emit(BackwardData{microbatch, slot, p, versions[p]});
      if (!c_.split_backward) weights_of(microbatch, slot, p);
    }
    if (stage_ > 0) emit(SendGrad{microbatch, slot, neighbour(-1)});
    if (c_.split_backward) weights(microbatch, slot);
  }

  // After the backward of the update's last microbatch: average (when needed) and apply.
  void end_of_update(int64_t update) {
    if (!averages()) {
      for (int p = 0; p < parts_; ++p) emit(OptimizerStep{update, p});
      return;
    }
    switch (c_.averaging) {
      case Averaging::sync:
        for (int p = 0; p < parts_; ++p) emit(StartAverage{update, p});
        for (int p = 0; p < parts_; ++p) {
          emit(WaitAverage{update, p});
          emit(OptimizerStep{update, p});
        }
        break;
      case Averaging::overlap:  // started during backward; applied just before the part is next used
        for (int p = 0; p < parts_; ++p) defer(p, {WaitAverage{update, p}, OptimizerStep{update, p}});
        break;
      case Averaging::delayed:
        for (int p = 0; p < parts_; ++p) emit(StartAverage{update, p});
        if (update > 0) apply_averaged(update - 1);
        delayed_ = update;
        break;
      case Averaging::sharded:
        for (int p = 0; p < parts_; ++p) {
          emit(StartAverage{update, p});
          emit(WaitAverage{update, p});
          emit(OptimizerStep{update, p});
          emit(StartGather{update, p});
          defer(p, {WaitGather{update, p}});
        }
        break;
    }
  }

  // Drains what is still in flight at the end of the program.
  Program finish() && {
    if (delayed_ >= 0) apply_averaged(delayed_);
    for (int p = 0; p < parts_; ++p) flush_deferred(p);
    return std::move(program_);
  }

 private:
  bool first_stage() const { return stage_ == 0; }
  bool last_stage() const { return stage_ == c_.stages - 1; }
  int neighbour(int offset) const { return rank_of(stage_ + offset, replica_, c_.stages); }
  bool averages() const { return c_.replicas > 1 || c_.averaging == Averaging::delayed; }

  // Every instruction passes here, so the weight versions follow the optimizer steps emitted.
  void emit(Instruction instruction) {
    if (const auto* step = std::get_if<OptimizerStep>(&instruction)) ++versions_[size_t(step->part)];
    program_.instructions.push_back(std::move(instruction));
  }

  // Overlap: a bucket's averaging starts as soon as the update's last weight gradient for it exists.
  void weights_of(int64_t microbatch, int slot, int part) {
    emit(BackwardWeights{microbatch, slot, part});
    const int64_t update = microbatch / c_.microbatches;
    if (++weight_grads_[{update, part}] == c_.microbatches && averages() && c_.averaging == Averaging::overlap)
      emit(StartAverage{update, part});
  }

  void defer(int part, std::vector<Instruction> instructions) {
    auto& pending = before_next_pass_[size_t(part)];
    pending.insert(pending.end(), instructions.begin(), instructions.end());
  }

  void flush_deferred(int part) {
    for (const Instruction& deferred : before_next_pass_[size_t(part)]) emit(deferred);
    before_next_pass_[size_t(part)].clear();
  }

  void apply_averaged(int64_t update) {
    for (int p = 0; p < parts_; ++p) {
      emit(WaitAverage{update, p});
      emit(OptimizerStep{update, p});
    }
  }

  const ScheduleConfig& c_;
  int stage_, replica_, parts_;
  Program program_;
  std::vector<int64_t> versions_;                    // updates applied, per part
  std::map<int64_t, std::vector<int64_t>> stashed_;  // PipeDream: versions each microbatch's forward saw
  std::vector<std::vector<Instruction>> before_next_pass_;  // overlap and sharding: waits left for the next pass
  std::map<std::pair<int64_t, int>, int> weight_grads_;  // (update, part) -> microbatches done
  int64_t delayed_ = -1;                             // delayed averaging: the update still in flight
};

// Fill-drain (GPipe), and one stage (sequential, data parallel) as its K = 1 case.
void build_fill_drain(const ScheduleConfig& c, RankBuilder& rank) {
  const bool pipelined = c.pipeline == Pipeline::gpipe;
  for (int64_t update = 0; update < c.steps; ++update) {
    const int64_t first = update * c.microbatches;
    if (pipelined) {
      for (int m = 0; m < c.microbatches; ++m) rank.forward(first + m, m);
      for (int m = c.microbatches - 1; m >= 0; --m) rank.backward(first + m, m);
    } else {
      for (int m = 0; m < c.microbatches; ++m) {
        rank.forward(first + m, 0);
        rank.backward(first + m, 0);
      }
    }
    rank.end_of_update(update);
  }
}

// Lock step (layerpipe): at step c, stage s runs the forward of microbatch c − s, then the data
// gradient of microbatch c − 2(K−1) + s, sends it, and its weight gradient and update; so it holds
// 2(K−1−s) + 1 microbatches.
void build_lock_step(const ScheduleConfig& c, int stage, RankBuilder& rank) {
  const int64_t lag = 2 * (c.stages - 1 - stage);
  const int slots = int(std::min<int64_t>(c.steps, lag + 1));
  for (int64_t step = 0; step < c.steps + lag + stage; ++step) {
    const int64_t forward = step - stage, backward = step - stage - lag;
    if (forward >= 0 && forward < c.steps) rank.forward(forward, int(forward % slots));
    if (backward < 0 || backward >= c.steps) continue;
    rank.backward_data(backward, int(backward % slots));
    rank.weights(backward, int(backward % slots));
    rank.end_of_update(backward);
  }
}

// One forward one backward (PipeDream's order): stage s keeps K - s microbatches in flight and
// runs the forward of microbatch j + K - s right after the backward (and update) of microbatch j.
void build_one_forward_one_backward(const ScheduleConfig& c, int stage, RankBuilder& rank) {
  const int in_flight = c.stages - stage;
  for (int64_t j = 0; j < std::min<int64_t>(in_flight, c.steps); ++j) rank.forward(j, int(j % in_flight));
  for (int64_t j = 0; j < c.steps; ++j) {
    rank.backward(j, int(j % in_flight));
    rank.end_of_update(j);
    if (j + in_flight < c.steps) rank.forward(j + in_flight, int((j + in_flight) % in_flight));
  }
}

// The lowest slots free at any time, so a stage holds no more than it must.
class SlotPool {
 public:
  int take() {
    int slot = 0;
    while (used_.count(slot)) ++slot;
    used_.insert(slot);
    return slot;
  }
  void give(int slot) { used_.erase(slot); }

 private:
  std::set<int> used_;
};

enum class Task { forward, data_gradient, weight_gradient };
using StageOrder = std::vector<std::pair<Task, int>>;  // (task, microbatch of the update)

// The zero-bubble order of one update on every stage: a list schedule at unit costs in which, at
// each tick, a stage runs the next data gradient whose output gradient has arrived, else the next
// forward whose input has arrived if fewer than 2K−1−s microbatches are in flight there (a
// microbatch leaves with its weight gradient), else its oldest pending weight gradient. Weight
// gradients so fill the ticks where 1F1B waits; the bubble left is K−1 ticks (GPipe's: 2(K−1)).
std::vector<StageOrder> zero_bubble_orders(int stages, int microbatches) {
  constexpr int kNever = std::numeric_limits<int>::max();
  std::vector<std::vector<int>> forward_done(size_t(stages), std::vector<int>(size_t(microbatches), kNever));
  std::vector<std::vector<int>> data_done = forward_done;
  std::vector<int> next_forward(size_t(stages), 0), next_data(size_t(stages), 0), in_flight(size_t(stages), 0);
  std::vector<std::deque<int>> pending(static_cast<size_t>(stages));
  std::vector<StageOrder> orders(static_cast<size_t>(stages));
  int64_t left = int64_t(3) * stages * microbatches;
  for (int tick = 0; left > 0; ++tick) {
    std::vector<std::pair<Task, int>> picked(size_t(stages), {Task::forward, -1});
    for (int s = 0; s < stages; ++s) {
      const size_t k = size_t(s);
      const int d = next_data[k], f = next_forward[k];
      const bool gradient_here = d < microbatches && forward_done[k][size_t(d)] <= tick &&
                                 (s == stages - 1 || data_done[k + 1][size_t(d)] <= tick);
      const bool input_here = f < microbatches && in_flight[k] < 2 * stages - 1 - s &&
                              (s == 0 || forward_done[k - 1][size_t(f)] <= tick);
      if (gradient_here) picked[k] = {Task::data_gradient, d};
      else if (input_here) picked[k] = {Task::forward, f};
      else if (!pending[k].empty()) picked[k] = {Task::weight_gradient, pending[k].front()};
    }
    for (size_t k = 0; k < size_t(stages); ++k) {
      const auto [task, m] = picked[k];
      if (m < 0) continue;
      orders[k].push_back(picked[k]);
      --left;
      if (task == Task::forward) {
        forward_done[k][size_t(m)] = tick + 1;
        ++next_forward[k];
        ++in_flight[k];
      } else if (task == Task::data_gradient) {
        data_done[k][size_t(m)] = tick + 1;
        ++next_data[k];
        pending[k].push_back(m);
      } else {
        pending[k].pop_front();
        --in_flight[k];
      }
    }
  }
  return orders;
}

// Replays a stage's zero-bubble order for every update; slots are taken at the forward and given
// back with the weight gradient.
void build_zero_bubble(const ScheduleConfig& c, const StageOrder& order, RankBuilder& rank) {
  for (int64_t update = 0; update < c.steps; ++update) {
    const int64_t first = update * c.microbatches;
    SlotPool pool;
    std::vector<int> slot_of(size_t(c.microbatches));
    for (const auto& [task, m] : order) {
      int& slot = slot_of[size_t(m)];
      if (task == Task::forward) {
        rank.forward(first + m, slot = pool.take());
      } else if (task == Task::data_gradient) {
        rank.backward_data(first + m, slot);
      } else {
        rank.weights(first + m, slot);
        pool.give(slot);
      }
    }
    rank.end_of_update(update);
  }
}

}  // namespace

Pipeline parse_pipeline(const std::string& name) {
  if (name == "none") return Pipeline::none;
  if (name == "gpipe") return Pipeline::gpipe;
  if (name == "pipedream") return Pipeline::pipedream;
  if (name == "stale") return Pipeline::stale;
  if (name == "zb") return Pipeline::zero_bubble;
  if (name == "layerpipe") return Pipeline::layerpipe;
  BATON_FAIL("unknown pipeline '" << name << "'; choose gpipe, zb, pipedream, stale, layerpipe or hybrid");
}

Averaging parse_averaging(const std::string& name) {
  if (name == "sync") return Averaging::sync;
  if (name == "overlap") return Averaging::overlap;
  if (name == "delayed") return Averaging::delayed;
  if (name == "sharded") return Averaging::sharded;
  BATON_FAIL("unknown averaging '" << name << "'; choose sync, overlap, delayed or sharded");
}

std::string name_of(Pipeline pipeline) {
  switch (pipeline) {
    case Pipeline::none: return "none";
    case Pipeline::gpipe: return "gpipe";
    case Pipeline::pipedream: return "pipedream";
    case Pipeline::stale: return "stale";
    case Pipeline::zero_bubble: return "zb";
    case Pipeline::layerpipe: return "layerpipe";
  }
  return "?";
}

std::string name_of(Averaging averaging) {
  switch (averaging) {
    case Averaging::sync: return "sync";
    case Averaging::overlap: return "overlap";
    case Averaging::delayed: return "delayed";
    case Averaging::sharded: return "sharded";
  }
  return "?";
}

bool updates_every_microbatch(Pipeline pipeline) {
  return pipeline == Pipeline::pipedream || pipeline == Pipeline::stale || pipeline == Pipeline::layerpipe;
}

int rank_of(int stage, int replica, int stages) { return replica * stages + stage; }
int stage_of(int rank, int stages) { return rank % stages; }
int replica_of(int rank, int stages) { return rank / stages; }

void check_config(const ScheduleConfig& c) {
  BATON_CHECK(c.stages >= 1, "--stages must be at least 1, not " << c.stages);
  BATON_CHECK(c.replicas >= 1, "--replicas must be at least 1, not " << c.replicas);
  BATON_CHECK(c.microbatches >= 1, "--microbatches must be at least 1, not " << c.microbatches);
  BATON_CHECK(c.steps >= 1, "a schedule needs at least one step, not " << c.steps);
  BATON_CHECK(c.pipeline != Pipeline::none || c.stages == 1,
              c.stages << " stages need a pipeline schedule; pass --pipeline gpipe, pipedream, stale or hybrid");
  const bool one_forward_one_backward = updates_every_microbatch(c.pipeline);
  BATON_CHECK(!one_forward_one_backward || c.microbatches == 1,
              name_of(c.pipeline) << " updates the weights after every microbatch, so it takes --microbatches 1; "
                                     "choose the microbatch with --batch-size");
  BATON_CHECK(!one_forward_one_backward || c.averaging != Averaging::delayed,
              "delayed averaging combines with gpipe or no pipeline, not with " << name_of(c.pipeline)
                                                                                << ", whose weights are stale already");
  BATON_CHECK(c.parts.empty() || int(c.parts.size()) == c.stages,
              "gradient buckets are given for " << c.parts.size() << " stages but there are " << c.stages);
  for (int parts : c.parts) {
    BATON_CHECK(parts >= 1, "a stage needs at least one gradient bucket, not " << parts);
    BATON_CHECK(parts == 1 || c.averaging == Averaging::overlap || c.averaging == Averaging::sharded,
                "several gradient buckets per stage only serve overlap and sharded averaging");
  }
}

std::vector<Program> build_programs(const ScheduleConfig& c) {
  check_config(c);
  std::vector<Program> programs;
  const std::vector<StageOrder> zero_bubble =
      c.pipeline == Pipeline::zero_bubble ? zero_bubble_orders(c.stages, c.microbatches) : std::vector<StageOrder>{};
  for (int replica = 0; replica < c.replicas; ++replica) {
    for (int stage = 0; stage < c.stages; ++stage) {
      RankBuilder rank(c, stage, replica);
      if (c.pipeline == Pipeline::pipedream || c.pipeline == Pipeline::stale)
        build_one_forward_one_backward(c, stage, rank);
      else if (c.pipeline == Pipeline::layerpipe)
        build_lock_step(c, stage, rank);
      else if (c.pipeline == Pipeline::zero_bubble)
        build_zero_bubble(c, zero_bubble[size_t(stage)], rank);
      else
        build_fill_drain(c, rank);
      programs.push_back(std::move(rank).finish());
    }
  }
  return programs;
}

}  // namespace baton::schedulers
