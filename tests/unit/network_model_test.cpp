// The α–β network model's prices, and the simulator's use of them: messages on one link and the
// collectives of one stage take turns, and one replica simulated alone predicts what all do.
#include <gtest/gtest.h>

#include <numeric>

#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"
#include "schedulers/builders.hpp"
#include "schedulers/network_model.hpp"
#include "schedulers/simulator.hpp"

namespace baton::schedulers {
namespace {

NetworkModel two_level(int ranks_per_node) {
  NetworkModel n;
  n.intra_node = {1e-6, 1e10};
  n.inter_node = {1e-5, 1e9};
  n.ranks_per_node = ranks_per_node;
  n.progress_interval = 0;
  return n;
}

std::vector<int> ranks(int first, int count, int stride = 1) {
  std::vector<int> group;
  for (int i = 0; i < count; ++i) group.push_back(first + i * stride);
  return group;
}

TEST(NetworkModel, PointToPointUsesTheLinkBetweenTheRanksNodes) {
  const NetworkModel n = two_level(4);
  EXPECT_DOUBLE_EQ(n.point_to_point(1e6, 0, 3), 1e-6 + 1e6 / 1e10);
  EXPECT_DOUBLE_EQ(n.point_to_point(1e6, 3, 4), 1e-5 + 1e6 / 1e9);
}

TEST(NetworkModel, RingAllreduceTakesTwoRMinusOneStepsOfOneRthOverTheSlowestLink) {
  const NetworkModel n = two_level(4);
  const double bytes = 8e6;
  EXPECT_DOUBLE_EQ(n.allreduce(bytes, ranks(0, 4)), 2 * 3 * (1e-6 + bytes / 4 / 1e10));  // one node
  EXPECT_DOUBLE_EQ(n.allreduce(bytes, ranks(0, 8)), 2 * 7 * (1e-5 + bytes / 8 / 1e9));  // two nodes
  EXPECT_DOUBLE_EQ(n.allreduce(bytes, ranks(2, 4, 4)), 2 * 3 * (1e-5 + bytes / 4 / 1e9));  // one per node
  EXPECT_DOUBLE_EQ(n.allreduce(bytes, {5}), 0.0);
  // Sharded averaging moves the same bytes in two halves.
  for (const std::vector<int>& group : {ranks(0, 4), ranks(0, 8)})
    EXPECT_DOUBLE_EQ(n.reduce_scatter(bytes, group) + n.all_gather(bytes, group), n.allreduce(bytes, group));
}

TEST(NetworkModel, TheReductionAddsItsBytesAtTheReductionBandwidthAndMayRunOnTheComputeCores) {
  NetworkModel n = two_level(4);
  const double bytes = 8e6;
  const double ring_within = 2 * 3 * (1e-6 + bytes / 4 / 1e10), ring_across = 2 * 7 * (1e-5 + bytes / 8 / 1e9);
  EXPECT_DOUBLE_EQ(n.compute_stolen(bytes, ranks(0, 4), 2), 0.0);
  n.reduction_bandwidth = 2e9;
  EXPECT_DOUBLE_EQ(n.allreduce(bytes, ranks(0, 4)), ring_within + 0.75 * bytes / 2e9);
  EXPECT_DOUBLE_EQ(n.allreduce(bytes, ranks(0, 8)), ring_across + 0.875 * bytes / 2e9);
  EXPECT_DOUBLE_EQ(n.all_gather(bytes, ranks(0, 8)), ring_across / 2);  // gathering reduces nothing
  EXPECT_DOUBLE_EQ(n.compute_stolen(bytes, ranks(0, 4), 2), 0.0);      // there are cores to spare
  n.reduction_steals_compute = true;
  // Within a node the copies are the processor's work too; across nodes the network's.
  EXPECT_DOUBLE_EQ(n.compute_stolen(bytes, ranks(0, 4), 2), n.allreduce(bytes, ranks(0, 4)));
  EXPECT_DOUBLE_EQ(n.compute_stolen(bytes, ranks(0, 8), 2), 0.875 * bytes / 2e9);
  EXPECT_DOUBLE_EQ(n.compute_stolen(bytes, ranks(0, 4), 1), n.reduce_scatter(bytes, ranks(0, 4)));
}

TEST(NetworkModel, TheCommunicationThreadSeesEachMessageAndRingStepHalfAnIntervalLate) {
  NetworkModel n = two_level(4);
  const double bytes = 8e6, ring = n.allreduce(bytes, ranks(0, 8)), message = n.point_to_point(bytes, 0, 5);
  n.progress_interval = 1e-3;
  EXPECT_DOUBLE_EQ(n.point_to_point(bytes, 0, 5), message + 5e-4);
  EXPECT_DOUBLE_EQ(n.allreduce(bytes, ranks(0, 8)), ring + 2 * 7 * 5e-4);
}

TEST(NetworkModel, ValuesThatCannotDescribeANetworkAreRefusedByName) {
  NetworkModel n = two_level(1);
  n.check();
  n.inter_node.bandwidth = 0;
  EXPECT_THROW(n.check(), Error);
  n = two_level(1);
  n.intra_node.latency = -1;
  try {
    n.check();
    FAIL() << "a negative latency was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("intra_node latency"), std::string::npos) << e.message();
  }
  n = two_level(0);
  EXPECT_THROW(n.check(), Error);
}

bool is_pass(const Instruction& i) {
  return std::holds_alternative<Forward>(i) || std::holds_alternative<BackwardData>(i) ||
         std::holds_alternative<BackwardWeights>(i);
}

// Passes cost 1; sends and collectives cost `latency`.
CostModel unit_passes(double latency) {
  return {[](const Program&, const Instruction& i) { return is_pass(i) ? 1.0 : 0.0; },
          [latency](const Program&, const Instruction& i) {
            const bool moves = std::holds_alternative<SendActivation>(i) || std::holds_alternative<SendGrad>(i) ||
                               std::holds_alternative<StartAverage>(i);
            return moves ? latency : 0.0;
          },
          CoreSharing{}};
}

// Start of the first instruction of `program` that `match` accepts.
template <class Match>
double start_of(const Program& program, const Simulation& sim, Match match) {
  for (size_t k = 0; k < program.instructions.size(); ++k)
    if (match(program.instructions[k])) return sim.spans[size_t(program.rank)][k].start;
  ADD_FAILURE() << "no such instruction";
  return -1;
}

TEST(Simulator, MessagesOnOneLinkTakeTurns) {
  ScheduleConfig c;
  c.stages = 2;
  c.microbatches = 2;
  c.pipeline = Pipeline::gpipe;
  const std::vector<Program> programs = build_programs(c);
  const Simulation sim = simulate(programs, unit_passes(5));
  // Microbatch 0 leaves stage 0 at 1 and arrives at 6; microbatch 1 leaves at 2 but waits for the
  // link until 6, so it arrives at 11, not 7.
  auto forward_of = [](int64_t m) {
    return [m](const Instruction& i) { return std::holds_alternative<Forward>(i) && std::get<Forward>(i).microbatch == m; };
  };
  EXPECT_DOUBLE_EQ(start_of(programs[1], sim, forward_of(0)), 6);
  EXPECT_DOUBLE_EQ(start_of(programs[1], sim, forward_of(1)), 11);
}

TEST(Simulator, CollectivesOfOneStageTakeTurns) {
  ScheduleConfig c;
  c.replicas = 2;
  c.averaging = Averaging::overlap;
  c.parts = {2};
  std::vector<Program> programs = build_programs(c);
  programs.resize(1);  // replica 0 alone: the collectives complete when it starts them
  const Simulation sim = simulate(programs, unit_passes(4));
  // Backward runs part 1 then part 0: F0 F1 [0,2), Bd1 Bw1 [2,4) starts part 1's average (done at
  // 8), Bd0 Bw0 [4,6) starts part 0's, which waits for the first: done at 12, not 10.
  auto wait_of = [](int part) {
    return [part](const Instruction& i) {
      return std::holds_alternative<WaitAverage>(i) && std::get<WaitAverage>(i).part == part;
    };
  };
  EXPECT_DOUBLE_EQ(start_of(programs[0], sim, wait_of(0)), 12);
  EXPECT_DOUBLE_EQ(sim.makespan, 12);
}

TEST(Simulator, OneReplicaAlonePredictsTheWholeSymmetricRun) {
  for (Averaging averaging : {Averaging::sync, Averaging::overlap, Averaging::delayed, Averaging::sharded}) {
    ScheduleConfig c;
    c.stages = 2;
    c.replicas = 3;
    c.microbatches = 2;
    c.steps = 3;
    c.pipeline = Pipeline::gpipe;
    c.averaging = averaging;
    std::vector<Program> programs = build_programs(c);
    const double all = simulate(programs, unit_passes(3)).makespan;
    programs.resize(size_t(c.stages));
    EXPECT_DOUBLE_EQ(simulate(programs, unit_passes(3)).makespan, all) << name_of(averaging);
  }
}

}  // namespace
}  // namespace baton::schedulers
