// The simulator's processor sharing: ranks computing at once on a node with fewer cores than they
// ask for slow down in proportion, ranks that wait leave their cores to the others, replicas that
// are not simulated load the node as the one simulated does, and collectives keep their price.
#include <gtest/gtest.h>

#include <numeric>

#include "schedulers/builders.hpp"
#include "schedulers/simulator.hpp"

namespace baton::schedulers {
namespace {

// One program per entry, each a single forward costing that many seconds; no messages.
std::vector<Program> independent(const std::vector<double>& seconds) {
  std::vector<Program> programs;
  for (size_t r = 0; r < seconds.size(); ++r) {
    Program p;
    p.rank = p.stage = int(r);
    p.instructions.push_back(Forward{0, 0, 0, 0});
    programs.push_back(p);
  }
  return programs;
}

CostModel costs_of(const std::vector<double>& seconds, CoreSharing cores) {
  return CostModel{[seconds](const Program& p, const Instruction&) { return seconds[size_t(p.rank)]; },
                   [](const Program&, const Instruction&) { return 0.0; }, std::move(cores)};
}

// Every program on node 0, each asking for `cores_each` while it computes.
CoreSharing one_node(double cores_per_node, size_t programs, double cores_each = 1) {
  CoreSharing sharing{cores_per_node, std::vector<int>(programs, 0), {}};
  sharing.load.assign(programs, {{0, cores_each}});
  return sharing;
}

TEST(CoreSharing, TwoRanksOnOneCoreShareItUntilTheShorterEnds) {
  const std::vector<double> seconds = {2.0, 1.0};
  const Simulation sim = simulate(independent(seconds), costs_of(seconds, one_node(1, 2)));
  // Both at half speed until rank 1's second of work is done at 2 s; rank 0 then has 1 s left alone.
  EXPECT_DOUBLE_EQ(sim.spans[1][0].end, 2.0);
  EXPECT_DOUBLE_EQ(sim.spans[0][0].end, 3.0);
  EXPECT_DOUBLE_EQ(sim.makespan, 3.0);
  EXPECT_DOUBLE_EQ(sim.busy[0], 3.0);
}

TEST(CoreSharing, EnoughCoresOrNoneGivenLeaveEveryRankAtFullSpeed) {
  const std::vector<double> seconds = {2.0, 1.0};
  for (const CoreSharing& cores : {one_node(2, 2), one_node(0, 2), CoreSharing{}}) {
    const Simulation sim = simulate(independent(seconds), costs_of(seconds, cores));
    EXPECT_DOUBLE_EQ(sim.spans[0][0].end, 2.0);
    EXPECT_DOUBLE_EQ(sim.spans[1][0].end, 1.0);
  }
}

TEST(CoreSharing, RanksOnOtherNodesDoNotSlowEachOther) {
  const std::vector<double> seconds = {2.0, 2.0};
  CoreSharing cores{1, {0, 1}, {{{0, 1.0}}, {{1, 1.0}}}};
  EXPECT_DOUBLE_EQ(simulate(independent(seconds), costs_of(seconds, cores)).makespan, 2.0);
}

TEST(CoreSharing, ThreadsAndReplicasNotSimulatedCountAsTheCoresTheyAskFor) {
  // One simulated rank standing for itself and an identical replica on its node, 2 threads each:
  // it asks for 4 cores of the node's 2 and runs at half speed.
  const std::vector<double> seconds = {1.0};
  EXPECT_DOUBLE_EQ(simulate(independent(seconds), costs_of(seconds, one_node(2, 1, 4))).makespan, 2.0);
  EXPECT_DOUBLE_EQ(simulate(independent(seconds), costs_of(seconds, one_node(4, 1, 4))).makespan, 1.0);
}

TEST(CoreSharing, ACollectivesWorkOnTheCoresKeepsItsCalibratedPrice) {
  // The reduction bandwidth was measured with every rank of the node reducing at once: a rank's
  // share of an allreduce neither slows down nor slows the others.
  std::vector<Program> programs = independent({1.0, 1.0});
  programs[1].instructions = {StartAverage{0, 0}};
  const Simulation sim = simulate(programs, costs_of({1.0, 1.0}, one_node(1, 2)));
  EXPECT_DOUBLE_EQ(sim.spans[0][0].end, 1.0);
  EXPECT_DOUBLE_EQ(sim.spans[1][0].end, 1.0);
}

TEST(CoreSharing, APipelineOnOneCoreLosesOnlyWhereItsStagesComputeAtOnce) {
  // GPipe with one microbatch runs one stage at a time: one core costs it nothing. With 4
  // microbatches the stages overlap, so one core is slower than a core each.
  for (int microbatches : {1, 4}) {
    ScheduleConfig c;
    c.pipeline = Pipeline::gpipe;
    c.stages = 2;
    c.microbatches = microbatches;
    c.steps = 2;
    const std::vector<Program> programs = build_programs(c);
    const double alone = simulate(programs, unit_costs()).makespan;
    CostModel shared = unit_costs();
    shared.cores = one_node(1, programs.size());
    const double one_core = simulate(programs, shared).makespan;
    const std::vector<double> busy = simulate(programs, unit_costs()).busy;
    const double serial = std::accumulate(busy.begin(), busy.end(), 0.0);  // every pass, one after another
    std::printf("  gpipe, %d microbatch(es): %.3f alone, %.3f on one core, %.3f serial\n", microbatches, alone,
                one_core, serial);
    EXPECT_GE(one_core, serial - 1e-9);  // one core does at most a second of work per second
    if (microbatches == 1) {
      EXPECT_DOUBLE_EQ(one_core, alone);
    } else {
      EXPECT_GT(one_core, alone);
    }
  }
}

}  // namespace
}  // namespace baton::schedulers
