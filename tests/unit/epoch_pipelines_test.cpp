// Which pipeline each epoch uses, with no model and no devices: hybrid's fixed switch, and the
// --hybrid-plateau switch after the first epoch whose training loss fell by less than the fraction.
#include <gtest/gtest.h>

#include "runtime/app/parallel_plan.hpp"

namespace baton {
namespace {

using schedulers::Pipeline;

ParallelConfig hybrid(double plateau, int64_t switch_epoch = -1) {
  ParallelConfig p;
  p.stages = 2;
  p.pipeline = "hybrid";
  p.hybrid_plateau = plateau;
  p.hybrid_switch_epoch = switch_epoch;
  return p;
}

// Feeds the epochs' losses; returns the epoch after which it switched (0: never).
int64_t switched_after(EpochPipelines& pipelines, const std::vector<double>& losses) {
  auto root_decides = [](bool mine) { return mine; };
  for (size_t e = 0; e < losses.size(); ++e)
    if (pipelines.switch_after(int64_t(e + 1), losses[e], root_decides)) return int64_t(e + 1);
  return 0;
}

TEST(EpochPipelines, AFixedSwitchIsHalfTheEpochsByDefault) {
  const ParallelConfig p = hybrid(0);
  EpochPipelines pipelines(p, 10);
  EXPECT_EQ(pipelines.of(5), Pipeline::stale);
  EXPECT_EQ(pipelines.of(6), Pipeline::gpipe);
  EXPECT_EQ(switched_after(pipelines, {2.0, 1.99, 1.98}), 0) << "without --hybrid-plateau the losses decide nothing";
}

TEST(EpochPipelines, ThePlateauSwitchFollowsTheFirstEpochThatFellByLessThanTheFraction) {
  const ParallelConfig p = hybrid(0.05);
  EpochPipelines pipelines(p, 10);
  // Falls by 20 %, 10 %, then 4 % in epoch 4: epochs 5.. train without pipelining.
  EXPECT_EQ(switched_after(pipelines, {1.0, 0.8, 0.72, 0.6912, 0.5}), 4);
  EXPECT_EQ(pipelines.plateau_switch_epoch(), 5);
  EXPECT_EQ(pipelines.of(4), Pipeline::stale);
  EXPECT_EQ(pipelines.of(5), Pipeline::gpipe);
  EXPECT_EQ(pipelines.of(10), Pipeline::gpipe);
}

TEST(EpochPipelines, WithAPlateauAndNoDecisionEveryEpochIsStale) {
  const ParallelConfig p = hybrid(0.05);
  EpochPipelines pipelines(p, 10);
  EXPECT_EQ(switched_after(pipelines, {1.0, 0.5, 0.25}), 0);
  for (int64_t epoch : {1, 6, 10}) EXPECT_EQ(pipelines.of(epoch), Pipeline::stale) << "epoch " << epoch;
  EXPECT_EQ(pipeline_for_epoch(p, 1, 1), Pipeline::stale) << "a one-epoch run plans for the stale pipeline";
}

TEST(EpochPipelines, AGivenSwitchEpochIsTheLatestSwitch) {
  const ParallelConfig p = hybrid(0.05, 3);
  EpochPipelines pipelines(p, 10);
  EXPECT_EQ(switched_after(pipelines, {1.0, 0.5, 0.25, 0.2}), 0);
  EXPECT_EQ(pipelines.of(2), Pipeline::stale);
  EXPECT_EQ(pipelines.of(3), Pipeline::gpipe);
}

TEST(EpochPipelines, EveryRankTakesRankZerosDecision) {
  const ParallelConfig p = hybrid(0.05);
  EpochPipelines pipelines(p, 10);
  // This rank's own losses (not rank 0's) show no plateau; the collective says rank 0 saw one.
  auto rank_zero_saw_a_plateau = [](bool) { return true; };
  EXPECT_TRUE(pipelines.switch_after(1, 0.0, rank_zero_saw_a_plateau));
  EXPECT_EQ(pipelines.of(2), Pipeline::gpipe);
}

TEST(EpochPipelines, ARestoredDecisionStands) {
  const ParallelConfig p = hybrid(0.05);
  EpochPipelines pipelines(p, 10);
  pipelines.restore(7, 0.4);
  EXPECT_EQ(pipelines.of(6), Pipeline::stale);
  EXPECT_EQ(pipelines.of(7), Pipeline::gpipe);
  EXPECT_DOUBLE_EQ(pipelines.last_loss(), 0.4);
  EXPECT_EQ(switched_after(pipelines, {0.1}), 0);
}

}  // namespace
}  // namespace baton
