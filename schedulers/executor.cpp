// Implementation of the executor: one std::visit per instruction, a missing case is a compile error.
#include "schedulers/executor.hpp"

#include <algorithm>

#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"

namespace baton::schedulers {

Executor::Executor(const Program& program, StageWorker& worker, Link& link, Averager& averager, Timeline* timeline)
    : program_(program), worker_(worker), link_(link), averager_(averager), timeline_(timeline),
      origin_(std::chrono::steady_clock::now()) {}

bool Executor::run_until_blocked() {
  bool ran = false;
  while (!done()) {
    const Instruction& instruction = program_.instructions[next_];
    auto start = std::chrono::steady_clock::now();
    if (!execute(instruction)) break;
    if (timeline_) {
      auto us = [&](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double, std::micro>(t - origin_).count();
      };
      const bool compute = std::holds_alternative<Forward>(instruction) ||
                           std::holds_alternative<BackwardData>(instruction) ||
                           std::holds_alternative<BackwardWeights>(instruction);
      timeline_->add(program_.rank, to_string(instruction), compute ? "compute" : "other", us(start),
                     us(std::chrono::steady_clock::now()));
    }
    ++next_;
    ran = true;
    if (progress_hook_) progress_hook_();
  }
  return ran;
}

std::string Executor::waiting_for() const {
  if (done()) return "rank " + std::to_string(program_.rank) + " has finished";
  return "rank " + std::to_string(program_.rank) + " waits at instruction " + std::to_string(next_) + " (" +
         to_string(program_.instructions[next_]) + ")";
}

void Executor::check_version(int64_t used, int64_t expected) {
  BATON_CHECK(used == expected, "rank " << program_.rank << " ran " << to_string(program_.instructions[next_])
                                        << " on weights of version " << used << " instead of " << expected
                                        << "; the schedule and the worker disagree");
}

bool Executor::execute(const Instruction& instruction) {
  return std::visit(
      Overloaded{
          [&](const LoadBatch& i) {
            worker_.load_batch(i.microbatch, i.slot);
            return true;
          },
          [&](const Forward& i) {
            check_version(worker_.forward(i.microbatch, i.slot, i.part), i.version);
            return true;
          },
          [&](const BackwardData& i) {
            check_version(worker_.backward_data(i.microbatch, i.slot, i.part), i.version);
            return true;
          },
          [&](const BackwardWeights& i) {
            worker_.backward_weights(i.microbatch, i.slot, i.part);
            return true;
          },
          [&](const SendActivation& i) {
            link_.send(Direction::activation, i.microbatch, i.to, worker_.outgoing(Direction::activation, i.slot));
            return true;
          },
          [&](const RecvActivation& i) {
            return link_.try_receive(Direction::activation, i.microbatch, i.from,
                                     worker_.incoming(Direction::activation, i.slot));
          },
          [&](const SendGrad& i) {
            link_.send(Direction::gradient, i.microbatch, i.to, worker_.outgoing(Direction::gradient, i.slot));
            return true;
          },
          [&](const RecvGrad& i) {
            return link_.try_receive(Direction::gradient, i.microbatch, i.from,
                                     worker_.incoming(Direction::gradient, i.slot));
          },
          [&](const StashWeights& i) {
            worker_.stash_weights(i.microbatch);
            return true;
          },
          [&](const StartAverage& i) {
            averager_.start(i.update, i.part, worker_.hand_over_gradient(i.part));
            return true;
          },
          [&](const WaitAverage& i) {
            if (!averager_.try_finish(i.update, i.part)) return false;
            averaged_.emplace_back(i.update, i.part);
            return true;
          },
          [&](const OptimizerStep& i) {
            auto it = std::find(averaged_.begin(), averaged_.end(), std::make_pair(i.update, i.part));
            const bool averaged = it != averaged_.end();
            if (averaged) averaged_.erase(it);
            auto [begin, end] = averaged ? averager_.shard(worker_.weights(i.part).size())
                                         : std::make_pair(size_t(0), worker_.weights(i.part).size());
            worker_.optimizer_step(i.update, i.part, averaged, begin, end);
            return true;
          },
          [&](const StartGather& i) {
            averager_.start_gather(i.update, i.part, worker_.weights(i.part));
            return true;
          },
          [&](const WaitGather& i) {
            if (!averager_.try_finish_gather(i.update, i.part, worker_.weights(i.part))) return false;
            worker_.weights_changed(i.part);
            return true;
          },
      },
      instruction);
}

void run_in_turn(std::vector<Executor>& executors) {
  for (;;) {
    bool progress = false, all_done = true;
    for (Executor& e : executors) {
      progress = e.run_until_blocked() || progress;
      all_done = all_done && e.done();
    }
    if (all_done) return;
    if (!progress) {
      std::string waits;
      for (const Executor& e : executors)
        if (!e.done()) waits += (waits.empty() ? "" : "; ") + e.waiting_for();
      BATON_FAIL("the programs cannot go on: " << waits);
    }
  }
}

}  // namespace baton::schedulers
