// Implementation of validate(): a replay of each rank's program that tracks slots, passes and
// weight versions, a global match of messages, and a unit-cost simulation for deadlocks.
#include "schedulers/validate.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"
#include "schedulers/simulator.hpp"

namespace baton::schedulers {
namespace {

// What one rank has done to one microbatch so far.
struct Progress {
  int forwarded = 0;         // parts
  int backward_data = 0;     // parts, last part first
  std::set<int> weights;     // parts whose weight gradient is done
  bool got_grad = false;
};

class RankReplay {
 public:
  RankReplay(const Program& program, const ScheduleConfig& config) : p_(program), c_(config) {
    versions_.assign(size_t(program.parts), 0);
    applied_.assign(size_t(program.parts), 0);
    slot_owner_.assign(size_t(program.slots), -1);
  }

  void run() {
    for (index_ = 0; index_ < p_.instructions.size(); ++index_) std::visit([&](const auto& i) { check(i); }, current());
    index_ = p_.instructions.size() - 1;
    finish();
  }

 private:
  const Instruction& current() const { return p_.instructions[index_]; }
  bool first_stage() const { return p_.stage == 0; }
  bool last_stage() const { return p_.stage == c_.stages - 1; }
  int64_t total_microbatches() const { return c_.steps * c_.microbatches; }

  void require(bool ok, const std::string& problem) const {
    if (ok) return;
    std::string where = "rank " + std::to_string(p_.rank);
    if (!p_.instructions.empty()) where += ", instruction " + std::to_string(index_) + " (" + to_string(current()) + ")";
    BATON_FAIL("invalid schedule at " << where << ": " << problem);
  }

  Progress& progress_of(int64_t microbatch) {
    require(microbatch >= 0 && microbatch < total_microbatches(),
            "microbatch " + std::to_string(microbatch) + " is outside the program's " +
                std::to_string(total_microbatches()));
    return progress_[microbatch];
  }

  void claim(int slot, int64_t microbatch) {
    require(slot >= 0 && slot < p_.slots, "slot " + std::to_string(slot) + " is outside the program's " +
                                              std::to_string(p_.slots) + " slots");
    int64_t& owner = slot_owner_[size_t(slot)];
    require(owner == -1 || owner == microbatch,
            "slot " + std::to_string(slot) + " still holds microbatch " + std::to_string(owner));
    owner = microbatch;
  }

  void in_slot(int slot, int64_t microbatch) {
    require(slot >= 0 && slot < p_.slots && slot_owner_[size_t(slot)] == microbatch,
            "microbatch " + std::to_string(microbatch) + " is not in slot " + std::to_string(slot));
  }

  int neighbour(int offset) const { return rank_of(p_.stage + offset, p_.replica, c_.stages); }

  int64_t expected_backward_version(int64_t microbatch) const {
    if (c_.pipeline == Pipeline::stale || c_.pipeline == Pipeline::layerpipe)
      return microbatch;  // the newest: one update per earlier microbatch
    return expected_forward_version(c_, p_.stage, microbatch);
  }

  void check(const LoadBatch& i) {
    require(first_stage() || last_stage(), "only the first and the last stage load data");
    claim(i.slot, i.microbatch);
    progress_of(i.microbatch);
  }
  void check(const RecvActivation& i) {
    require(!first_stage(), "the first stage receives no activations");
    require(i.from == neighbour(-1), "activations come from rank " + std::to_string(neighbour(-1)));
    claim(i.slot, i.microbatch);
    require(progress_of(i.microbatch).forwarded == 0, "the activation arrives after the forward");
  }
  void check(const Forward& i) {
    in_slot(i.slot, i.microbatch);
    Progress& m = progress_of(i.microbatch);
    require(m.forwarded == i.part, "parts go forward in order; this microbatch is at part " + std::to_string(m.forwarded));
    require(i.version == versions_[size_t(i.part)], "the part's weights are at version " +
                                                        std::to_string(versions_[size_t(i.part)]));
    require(i.version == expected_forward_version(c_, p_.stage, i.microbatch),
            name_of(c_.pipeline) + " prescribes version " +
                std::to_string(expected_forward_version(c_, p_.stage, i.microbatch)) + " for this forward");
    ++m.forwarded;
  }
  void check(const StashWeights& i) {
    require(progress_of(i.microbatch).forwarded == p_.parts, "weights are stashed after the whole forward");
    stash_[i.microbatch] = versions_;
  }
  void check(const SendActivation& i) {
    require(!last_stage(), "the last stage sends no activations");
    require(i.to == neighbour(+1), "activations go to rank " + std::to_string(neighbour(+1)));
    in_slot(i.slot, i.microbatch);
    require(progress_of(i.microbatch).forwarded == p_.parts, "an activation is sent after the whole forward");
  }
  void check(const RecvGrad& i) {
    require(!last_stage(), "the last stage receives no gradients");
    require(i.from == neighbour(+1), "gradients come from rank " + std::to_string(neighbour(+1)));
    in_slot(i.slot, i.microbatch);
    Progress& m = progress_of(i.microbatch);
    require(m.forwarded == p_.parts, "a gradient is received after the forward");
    m.got_grad = true;
  }
  void check(const BackwardData& i) {
    in_slot(i.slot, i.microbatch);
    Progress& m = progress_of(i.microbatch);
    require(m.forwarded == p_.parts, "forward before backward");
    require(last_stage() || m.got_grad, "the output gradient has not been received");
    require(i.part == p_.parts - 1 - m.backward_data, "parts go backward last first");
    auto stash = stash_.find(i.microbatch);
    const int64_t available = stash != stash_.end() ? stash->second[size_t(i.part)] : versions_[size_t(i.part)];
    require(i.version == available, "the weights at hand are version " + std::to_string(available));
    require(i.version == expected_backward_version(i.microbatch),
            name_of(c_.pipeline) + " prescribes version " + std::to_string(expected_backward_version(i.microbatch)) +
                " for this backward");
    if (++m.backward_data == p_.parts && stash != stash_.end()) stash_.erase(stash);
  }
  void check(const BackwardWeights& i) {
    in_slot(i.slot, i.microbatch);
    Progress& m = progress_of(i.microbatch);
    require(m.backward_data > p_.parts - 1 - i.part, "the weight gradient needs the part's data gradient first");
    require(m.weights.insert(i.part).second, "the weight gradient of this part was computed already");
    if (int(m.weights.size()) == p_.parts) slot_owner_[size_t(i.slot)] = -1;  // the slot is free again
    ++weight_grads_[{i.microbatch / c_.microbatches, i.part}];
  }
  void check(const SendGrad& i) {
    require(!first_stage(), "the first stage sends no gradients");
    require(i.to == neighbour(-1), "gradients go to rank " + std::to_string(neighbour(-1)));
    require(progress_of(i.microbatch).backward_data == p_.parts, "the input gradient is sent after the data gradient");
  }
  void check(const StartAverage& i) {
    require(weight_grads_[{i.update, i.part}] == c_.microbatches,
            "averaging starts before every microbatch of the update has its weight gradient");
    started_.insert({i.update, i.part});
  }
  void check(const WaitAverage& i) {
    require(started_.count({i.update, i.part}) == 1, "no averaging of this update was started");
    averaged_.insert({i.update, i.part});
  }
  void check(const OptimizerStep& i) {
    const size_t part = size_t(i.part);
    require(i.update == applied_[part], "updates apply in order; the next one is " + std::to_string(applied_[part]));
    require(weight_grads_[{i.update, i.part}] == c_.microbatches, "the update's gradient is not complete");
    const bool averaged = c_.replicas > 1 || c_.averaging == Averaging::delayed;
    require(!averaged || averaged_.count({i.update, i.part}) == 1, "the update is applied before its average arrived");
    ++applied_[part];
    ++versions_[part];
  }
  void check(const StartGather& i) {
    require(applied_[size_t(i.part)] > i.update, "weights are gathered after their update");
  }
  void check(const WaitGather&) {}

  void finish() {
    for (int64_t mb = 0; mb < total_microbatches(); ++mb) {
      const Progress& m = progress_[mb];
      require(m.forwarded == p_.parts && m.backward_data == p_.parts && int(m.weights.size()) == p_.parts,
              "microbatch " + std::to_string(mb) + " does not finish its forward and backward");
    }
    for (int64_t applied : applied_)
      require(applied == c_.steps, "the program applies " + std::to_string(applied) + " of " +
                                       std::to_string(c_.steps) + " updates");
  }

  const Program& p_;
  const ScheduleConfig& c_;
  size_t index_ = 0;
  std::vector<int64_t> versions_, applied_;
  std::vector<int64_t> slot_owner_;
  std::map<int64_t, Progress> progress_;
  std::map<int64_t, std::vector<int64_t>> stash_;
  std::map<std::pair<int64_t, int>, int> weight_grads_;  // (update, part) -> microbatches done
  std::set<std::pair<int64_t, int>> started_, averaged_;
};

// Every send is received exactly once, by the rank it was sent to. An unmatched message is
// reported at its last send (too many sends) or its last receive (too many receives).
void check_messages(const std::vector<Program>& programs) {
  using Message = std::tuple<bool, int64_t, int, int>;  // (gradient?, microbatch, from, to)
  std::map<Message, int> balance;
  std::map<std::pair<Message, bool>, std::pair<int, size_t>> last;  // (message, is send) -> (rank, index)
  for (const Program& p : programs) {
    for (size_t k = 0; k < p.instructions.size(); ++k) {
      auto count = [&](Message m, int delta) {
        balance[m] += delta;
        last[{m, delta > 0}] = {p.rank, k};
      };
      std::visit(Overloaded{
                     [&](const SendActivation& i) { count({false, i.microbatch, p.rank, i.to}, +1); },
                     [&](const RecvActivation& i) { count({false, i.microbatch, i.from, p.rank}, -1); },
                     [&](const SendGrad& i) { count({true, i.microbatch, p.rank, i.to}, +1); },
                     [&](const RecvGrad& i) { count({true, i.microbatch, i.from, p.rank}, -1); },
                     [](const auto&) {},
                 },
                 p.instructions[k]);
    }
  }
  for (const auto& [message, count] : balance) {
    if (count == 0) continue;
    auto [rank, index] = last[{message, count > 0}];
    BATON_FAIL("invalid schedule at rank " << rank << ", instruction " << index << " ("
                                           << to_string(programs[size_t(rank)].instructions[index]) << "): "
                                           << (count > 0 ? "no rank receives it" : "no rank sends it")
                                           << (std::abs(count) > 1 ? " (or it appears twice)" : ""));
  }
}

}  // namespace

int64_t expected_forward_version(const ScheduleConfig& c, int stage, int64_t microbatch) {
  const int64_t update = microbatch / c.microbatches;
  if (c.pipeline == Pipeline::layerpipe) return std::max<int64_t>(0, update - 2 * (c.stages - 1 - stage));
  if (updates_every_microbatch(c.pipeline)) return std::max<int64_t>(0, update - (c.stages - 1 - stage));
  if (c.averaging == Averaging::delayed) return std::max<int64_t>(0, update - 1);
  return update;
}

void validate(const std::vector<Program>& programs, const ScheduleConfig& config) {
  check_config(config);
  BATON_CHECK(int(programs.size()) == config.stages * config.replicas,
              "there are " << programs.size() << " programs for " << config.stages << " stages x " << config.replicas
                           << " replicas");
  for (size_t r = 0; r < programs.size(); ++r) {
    const Program& p = programs[r];
    BATON_CHECK(p.rank == int(r) && p.stage == stage_of(p.rank, config.stages) &&
                    p.replica == replica_of(p.rank, config.stages),
                "invalid schedule: program " << r << " claims rank " << p.rank << ", stage " << p.stage
                                             << ", replica " << p.replica);
    RankReplay(p, config).run();
  }
  check_messages(programs);
  Simulation simulation = simulate(programs, unit_costs());
  BATON_CHECK(!simulation.deadlocked, "invalid schedule: the programs deadlock: " << simulation.blocked);
}

std::vector<int64_t> forward_delays(const std::vector<Program>& programs, const ScheduleConfig& config) {
  std::vector<int64_t> delays(size_t(config.stages), 0);
  for (const Program& p : programs) {
    for (const Instruction& instruction : p.instructions) {
      if (const auto* f = std::get_if<Forward>(&instruction)) {
        const int64_t update = f->microbatch / config.microbatches;
        delays[size_t(p.stage)] = std::max(delays[size_t(p.stage)], update - f->version);
      }
    }
  }
  return delays;
}

}  // namespace baton::schedulers
