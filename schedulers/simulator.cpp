// Implementation of the discrete-event simulation: time moves from one end of a computation or
// arrival to the next, ranks run what has arrived, and a node's computing ranks share its cores;
// a state with neither a computation nor an awaited arrival ahead is a deadlock.
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

bool is_compute(const Instruction& instruction) {
  return std::holds_alternative<Forward>(instruction) || std::holds_alternative<BackwardData>(instruction) ||
         std::holds_alternative<BackwardWeights>(instruction);
}

// What CoreSharing shares: passes and optimizer steps.
bool shares_cores(const Instruction& instruction) {
  return is_compute(instruction) || std::holds_alternative<OptimizerStep>(instruction);
}

// A rank in the middle of an instruction that costs time: its work left, in seconds at full speed,
// as of the last time its speed changed.
struct Computing {
  bool active = false;
  bool shared = false;  // counts towards its node's cores and slows down with them
  double since = 0;
  double left = 0;
  double rate = 1;
  double finish() const { return since + left / rate; }
};

class Simulator {
 public:
  Simulator(const std::vector<Program>& programs, const CostModel& costs) : programs_(programs), costs_(costs) {
    for (const Program& p : programs) replicas_ += p.stage == 0;
    pc_.assign(programs.size(), 0);
    clock_.assign(programs.size(), 0.0);
    computing_.assign(programs.size(), Computing{});
    result_.spans.resize(programs.size());
    result_.busy.assign(programs.size(), 0.0);
  }

  // Time moves from event to event: at each, every rank that is not computing runs what it can;
  // then time jumps to the next end of a computation or arrival that a waiting rank needs.
  Simulation run() && {
    double now = 0;
    while (true) {
      settle(now);
      if (done()) break;
      const std::optional<double> next = next_event();
      if (!next) {
        describe_deadlock();
        break;
      }
      now = std::max(now, *next);  // never back, whatever the rounding of a rate change
      finish_computations(now);
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

  void settle(double now) {
    for (bool progress = true; progress;) {
      progress = false;
      for (size_t r = 0; r < programs_.size(); ++r)
        if (!computing_[r].active) progress = run_ready(r, now) || progress;
    }
    share_cores(now);
  }

  // Runs rank r's instructions whose inputs are there at `now`, up to one that costs time (which
  // it starts) or one that must wait; true if any ran or started.
  bool run_ready(size_t r, double now) {
    const Program& program = programs_[r];
    bool ran = false;
    while (pc_[r] < program.instructions.size()) {
      const Instruction& instruction = program.instructions[pc_[r]];
      const std::optional<double> ready = ready_at(program, instruction, now);
      if (!ready || *ready > now) break;
      ran = true;
      const double cost = costs_.compute(program, instruction);
      result_.spans[r].push_back(Span{now, now});
      if (cost > 0) {
        computing_[r] = Computing{true, shares_cores(instruction), now, cost, 1.0};
        break;
      }
      complete(r, now);
    }
    return ran;
  }

  void complete(size_t r, double now) {
    const Program& program = programs_[r];
    Span& span = result_.spans[r].back();
    span.end = now;
    result_.busy[r] += span.end - span.start;
    clock_[r] = now;
    publish(program, program.instructions[pc_[r]], now);
    ++pc_[r];
  }

  void finish_computations(double now) {
    for (size_t r = 0; r < programs_.size(); ++r) {
      if (!computing_[r].active || computing_[r].finish() > now) continue;
      computing_[r].active = false;
      complete(r, now);
    }
  }

  // Gives each computing rank its share of its node's cores from `now` on.
  void share_cores(double now) {
    const CoreSharing& cores = costs_.cores;
    if (cores.node.empty() || cores.cores_per_node <= 0) return;
    std::map<int, double> asked;  // node: cores its computing ranks ask for
    for (size_t r = 0; r < programs_.size(); ++r)
      if (computing_[r].active && computing_[r].shared)
        for (const auto& [node, count] : cores.load[r]) asked[node] += count;
    for (size_t r = 0; r < programs_.size(); ++r) {
      Computing& c = computing_[r];
      if (!c.active || !c.shared) continue;
      const double wanted = asked[cores.node[r]];
      const double rate = wanted > cores.cores_per_node ? cores.cores_per_node / wanted : 1.0;
      if (rate == c.rate) continue;
      c.left = std::max(0.0, c.left - (now - c.since) * c.rate);
      c.since = now;
      c.rate = rate;
    }
  }

  // The earliest end of a computation, or arrival a waiting rank needs; none: deadlock.
  std::optional<double> next_event() const {
    std::optional<double> next;
    auto consider = [&next](double t) { next = next ? std::min(*next, t) : t; };
    for (size_t r = 0; r < programs_.size(); ++r) {
      if (computing_[r].active) {
        consider(computing_[r].finish());
      } else if (pc_[r] < programs_[r].instructions.size()) {
        const Program& program = programs_[r];
        if (std::optional<double> ready = ready_at(program, program.instructions[pc_[r]], clock_[r])) consider(*ready);
      }
    }
    return next;
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

  std::optional<double> ready_at(const Program& p, const Instruction& instruction, double now) const {
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
  std::vector<double> clock_;  // per rank: when it last completed an instruction
  std::vector<Computing> computing_;
  std::map<Key, double> messages_;
  std::map<Key, Collective> collectives_;
  std::map<std::pair<int, int>, double> link_free_;  // (from, to): when its last message arrived
  std::map<int, double> stage_comm_free_;            // stage: when its replicas' last collective ended
  Simulation result_;
};

}  // namespace

CostModel unit_costs() {
  return CostModel{
      [](const Program& p, const Instruction& i) { return is_compute(i) ? 1.0 / p.parts : 0.0; },
      [](const Program&, const Instruction&) { return 0.0; },
      CoreSharing{},
  };
}

Simulation simulate(const std::vector<Program>& programs, const CostModel& costs) {
  return Simulator(programs, costs).run();
}

}  // namespace baton::schedulers
