// Implementation of the discrete-event simulation: ranks advance in turn as far as their next
// instruction's inputs have arrived; a pass in which no rank advances means deadlock.
#include "schedulers/simulator.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>

#include "runtime/base/overloaded.hpp"

namespace baton::schedulers {
namespace {

enum class Channel { activation, gradient, average, gather };

// A message (channel, microbatch, from, to) or a collective (channel, update, part, stage).
using Key = std::tuple<Channel, int64_t, int, int>;

struct Collective {
  int started = 0;
  double latest = 0;  // when the last replica started
  double done = 0;    // valid once every replica started
};

class Simulator {
 public:
  Simulator(const std::vector<Program>& programs, const CostModel& costs) : programs_(programs), costs_(costs) {
    for (const Program& p : programs) replicas_ += p.stage == 0;
    pc_.assign(programs.size(), 0);
    clock_.assign(programs.size(), 0.0);
    result_.spans.resize(programs.size());
    result_.busy.assign(programs.size(), 0.0);
  }

  Simulation run() && {
    while (!done()) {
      bool progress = false;
      for (size_t r = 0; r < programs_.size(); ++r) progress = advance(r) || progress;
      if (!progress) {
        describe_deadlock();
        break;
      }
    }
    result_.makespan = *std::max_element(clock_.begin(), clock_.end());
    return std::move(result_);
  }

 private:
  bool done() const {
    for (size_t r = 0; r < programs_.size(); ++r)
      if (pc_[r] < programs_[r].instructions.size()) return false;
    return true;
  }

  // Runs rank r's instructions until one must wait; true if any ran.
  bool advance(size_t r) {
    const Program& program = programs_[r];
    bool ran = false;
    while (pc_[r] < program.instructions.size()) {
      const Instruction& instruction = program.instructions[pc_[r]];
      std::optional<double> ready = ready_at(program, instruction);
      if (!ready) break;
      Span span;
      span.start = std::max(clock_[r], *ready);
      const double cost = costs_.compute(program, instruction);
      span.end = span.start + cost;
      result_.busy[r] += cost;
      clock_[r] = span.end;
      publish(program, instruction, span.end);
      result_.spans[r].push_back(span);
      ++pc_[r];
      ran = true;
    }
    return ran;
  }

  std::optional<double> arrival(const Key& key) const {
    auto it = messages_.find(key);
    return it == messages_.end() ? std::nullopt : std::optional<double>(it->second);
  }

  std::optional<double> collective(const Key& key) const {
    auto it = collectives_.find(key);
    if (it == collectives_.end() || it->second.started < replicas_) return std::nullopt;
    return it->second.done;
  }

  std::optional<double> ready_at(const Program& p, const Instruction& instruction) const {
    const double now = clock_[size_t(p.rank)];
    return std::visit(
        Overloaded{
            [&](const RecvActivation& i) { return arrival({Channel::activation, i.microbatch, i.from, p.rank}); },
            [&](const RecvGrad& i) { return arrival({Channel::gradient, i.microbatch, i.from, p.rank}); },
            [&](const WaitAverage& i) { return collective({Channel::average, i.update, i.part, p.stage}); },
            [&](const WaitGather& i) { return collective({Channel::gather, i.update, i.part, p.stage}); },
            [&](const auto&) { return std::optional<double>(now); },
        },
        instruction);
  }

  // Makes what this instruction sends visible to the others.
  void publish(const Program& p, const Instruction& instruction, double end) {
    const double latency = costs_.latency(p, instruction);
    auto start = [&](Channel channel, int64_t update, int part) {
      Collective& c = collectives_[{channel, update, part, p.stage}];
      c.latest = std::max(c.latest, end);
      if (++c.started < replicas_) return;
      double& free = stage_comm_free_[p.stage];
      c.done = free = std::max(c.latest, free) + latency;
    };
    auto send = [&](Channel channel, int64_t microbatch, int to) {
      double& free = link_free_[{p.rank, to}];
      messages_[{channel, microbatch, p.rank, to}] = free = std::max(end, free) + latency;
    };
    std::visit(Overloaded{
                   [&](const SendActivation& i) { send(Channel::activation, i.microbatch, i.to); },
                   [&](const SendGrad& i) { send(Channel::gradient, i.microbatch, i.to); },
                   [&](const StartAverage& i) { start(Channel::average, i.update, i.part); },
                   [&](const StartGather& i) { start(Channel::gather, i.update, i.part); },
                   [](const auto&) {},
               },
               instruction);
  }

  void describe_deadlock() {
    result_.deadlocked = true;
    std::ostringstream out;
    for (size_t r = 0; r < programs_.size(); ++r) {
      if (pc_[r] >= programs_[r].instructions.size()) continue;
      out << (out.tellp() > 0 ? "; " : "") << "rank " << r << " waits at instruction " << pc_[r] << " ("
          << to_string(programs_[r].instructions[pc_[r]]) << ")";
    }
    result_.blocked = out.str();
  }

  const std::vector<Program>& programs_;
  const CostModel& costs_;
  int replicas_ = 0;
  std::vector<size_t> pc_;
  std::vector<double> clock_;
  std::map<Key, double> messages_;
  std::map<Key, Collective> collectives_;
  std::map<std::pair<int, int>, double> link_free_;  // (from, to): when its last message arrived
  std::map<int, double> stage_comm_free_;            // stage: when its replicas' last collective ended
  Simulation result_;
};

bool is_compute(const Instruction& instruction) {
  return std::holds_alternative<Forward>(instruction) || std::holds_alternative<BackwardData>(instruction) ||
         std::holds_alternative<BackwardWeights>(instruction);
}

}  // namespace

CostModel unit_costs() {
  return CostModel{
      [](const Program& p, const Instruction& i) { return is_compute(i) ? 1.0 / p.parts : 0.0; },
      [](const Program&, const Instruction&) { return 0.0; },
  };
}

Simulation simulate(const std::vector<Program>& programs, const CostModel& costs) {
  return Simulator(programs, costs).run();
}

}  // namespace baton::schedulers
