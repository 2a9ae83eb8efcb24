// Schedules with no devices at all: every builder over stages 1..8, microbatches 1..16 and
// replicas 1, 2, 4 validates; instruction counts, forward delays, GPipe's bubble at unit costs
// and dp-delayed versions follow DESIGN.md §1; broken programs are rejected naming the culprit.
#include <gtest/gtest.h>

#include <algorithm>

#include "runtime/base/error.hpp"
#include "schedulers/builders.hpp"
#include "schedulers/simulator.hpp"
#include "schedulers/validate.hpp"

namespace baton::schedulers {
namespace {

template <class T>
int count_of(const Program& p) {
  return int(std::count_if(p.instructions.begin(), p.instructions.end(),
                           [](const Instruction& i) { return std::holds_alternative<T>(i); }));
}

ScheduleConfig config(Pipeline pipeline, int stages, int microbatches, int replicas, Averaging averaging,
                      int64_t steps, bool split = false) {
  ScheduleConfig c;
  c.pipeline = pipeline;
  c.stages = stages;
  c.microbatches = microbatches;
  c.replicas = replicas;
  c.averaging = averaging;
  c.steps = steps;
  c.split_backward = split;
  return c;
}

std::string describe(const ScheduleConfig& c) {
  return name_of(c.pipeline) + " K=" + std::to_string(c.stages) + " M=" + std::to_string(c.microbatches) +
         " R=" + std::to_string(c.replicas) + " " + name_of(c.averaging) + " steps=" + std::to_string(c.steps) +
         (c.split_backward ? " split" : "");
}

// The counts every rank's program must have, whatever the mode.
void expect_counts(const std::vector<Program>& programs, const ScheduleConfig& c) {
  const int per_rank = int(c.steps * c.microbatches);
  for (const Program& p : programs) {
    SCOPED_TRACE("rank " + std::to_string(p.rank));
    EXPECT_EQ(count_of<Forward>(p), per_rank * p.parts);
    EXPECT_EQ(count_of<BackwardData>(p), per_rank * p.parts);
    EXPECT_EQ(count_of<BackwardWeights>(p), per_rank * p.parts);
    EXPECT_EQ(count_of<OptimizerStep>(p), int(c.steps) * p.parts);
    EXPECT_EQ(count_of<SendActivation>(p), p.stage < c.stages - 1 ? per_rank : 0);
    EXPECT_EQ(count_of<RecvActivation>(p), p.stage > 0 ? per_rank : 0);
    EXPECT_EQ(count_of<SendGrad>(p), p.stage > 0 ? per_rank : 0);
    EXPECT_EQ(count_of<RecvGrad>(p), p.stage < c.stages - 1 ? per_rank : 0);
    const bool averages = c.replicas > 1 || c.averaging == Averaging::delayed;
    EXPECT_EQ(count_of<StartAverage>(p), averages ? int(c.steps) * p.parts : 0);
    EXPECT_EQ(count_of<WaitAverage>(p), averages ? int(c.steps) * p.parts : 0);
  }
}

TEST(Builders, FillDrainModesValidateEverywhere) {
  int checked = 0;
  for (int stages = 1; stages <= 8; ++stages) {
    for (int microbatches = 1; microbatches <= 16; ++microbatches) {
      for (int replicas : {1, 2, 4}) {
        for (Averaging averaging : {Averaging::sync, Averaging::overlap, Averaging::delayed, Averaging::sharded}) {
          for (bool split : {false, true}) {
            ScheduleConfig c = config(stages == 1 ? Pipeline::none : Pipeline::gpipe, stages, microbatches, replicas,
                                      averaging, 3, split);
            SCOPED_TRACE(describe(c));
            std::vector<Program> programs = build_programs(c);
            ASSERT_NO_THROW(validate(programs, c));
            expect_counts(programs, c);
            ++checked;
          }
        }
      }
    }
  }
  std::printf("  %d fill-drain configurations validated\n", checked);
}

TEST(Builders, ZeroBubbleValidatesEverywhereWithinItsSlots) {
  int checked = 0;
  for (int stages = 1; stages <= 9; ++stages) {
    for (int microbatches = 1; microbatches <= 16; ++microbatches) {
      for (int replicas : {1, 2}) {
        for (Averaging averaging : {Averaging::sync, Averaging::overlap, Averaging::delayed, Averaging::sharded}) {
          ScheduleConfig c = config(Pipeline::zero_bubble, stages, microbatches, replicas, averaging, 3);
          SCOPED_TRACE(describe(c));
          std::vector<Program> programs = build_programs(c);
          ASSERT_NO_THROW(validate(programs, c));
          expect_counts(programs, c);
          for (const Program& p : programs) EXPECT_LE(p.slots, std::min(microbatches, 2 * stages - 1 - p.stage));
          ++checked;
        }
      }
    }
  }
  std::printf("  %d zero-bubble configurations validated\n", checked);
}

TEST(Builders, OneForwardOneBackwardModesValidateEverywhere) {
  int checked = 0;
  for (Pipeline pipeline : {Pipeline::pipedream, Pipeline::stale}) {
    for (int stages = 1; stages <= 8; ++stages) {
      for (int64_t steps = 1; steps <= 16; ++steps) {
        for (int replicas : {1, 2, 4}) {
          for (Averaging averaging : {Averaging::sync, Averaging::overlap, Averaging::sharded}) {
            for (bool split : {false, true}) {
              ScheduleConfig c = config(pipeline, stages, 1, replicas, averaging, steps, split);
              SCOPED_TRACE(describe(c));
              std::vector<Program> programs = build_programs(c);
              ASSERT_NO_THROW(validate(programs, c));
              expect_counts(programs, c);
              for (const Program& p : programs)
                EXPECT_EQ(p.slots, std::min<int64_t>(stages - p.stage, steps)) << "rank " << p.rank;
              ++checked;
            }
          }
        }
      }
    }
  }
  std::printf("  %d one-forward-one-backward configurations validated\n", checked);
}

TEST(Builders, SeveralBucketsPerStageValidate) {
  for (Averaging averaging : {Averaging::overlap, Averaging::sharded}) {
    for (Pipeline pipeline : {Pipeline::gpipe, Pipeline::stale}) {
      ScheduleConfig c = config(pipeline, 3, pipeline == Pipeline::gpipe ? 4 : 1, 2, averaging, 5);
      c.parts = {3, 1, 2};
      SCOPED_TRACE(describe(c));
      std::vector<Program> programs = build_programs(c);
      ASSERT_NO_THROW(validate(programs, c));
      expect_counts(programs, c);
    }
  }
}

TEST(Builders, LockStepValidatesEverywhereAndItsForwardsAreTwiceAsStale) {
  int checked = 0;
  for (int stages = 1; stages <= 9; ++stages) {
    for (int64_t steps = 1; steps <= 16; ++steps) {
      for (int replicas : {1, 2}) {
        for (Averaging averaging : {Averaging::sync, Averaging::overlap, Averaging::sharded}) {
          ScheduleConfig c = config(Pipeline::layerpipe, stages, 1, replicas, averaging, steps);
          SCOPED_TRACE(describe(c));
          std::vector<Program> programs = build_programs(c);
          ASSERT_NO_THROW(validate(programs, c));
          expect_counts(programs, c);
          for (const Program& p : programs)
            EXPECT_EQ(p.slots, std::min<int64_t>(2 * (stages - 1 - p.stage) + 1, steps)) << "rank " << p.rank;
          ++checked;
        }
      }
    }
    ScheduleConfig c = config(Pipeline::layerpipe, stages, 1, 1, Averaging::sync, 3 * stages);
    std::vector<int64_t> delays = forward_delays(build_programs(c), c);
    for (int s = 0; s < stages; ++s) EXPECT_EQ(delays[size_t(s)], 2 * (stages - 1 - s)) << describe(c) << " stage " << s;
  }
  std::printf("  %d lock-step configurations validated\n", checked);
}

TEST(Simulator, LockStepRunsAsFastAsStaleWithSplitBackward) {
  for (int stages = 1; stages <= 9; ++stages) {
    const ScheduleConfig lock_step = config(Pipeline::layerpipe, stages, 1, 1, Averaging::sync, 32);
    const ScheduleConfig stale = config(Pipeline::stale, stages, 1, 1, Averaging::sync, 32, true);
    EXPECT_EQ(simulate(build_programs(lock_step), unit_costs()).makespan,
              simulate(build_programs(stale), unit_costs()).makespan)
        << describe(lock_step);
  }
}

TEST(Builders, StaleAndPipeDreamForwardDelayIsStagesMinusOneMinusStage) {
  for (Pipeline pipeline : {Pipeline::pipedream, Pipeline::stale}) {
    for (int stages = 1; stages <= 8; ++stages) {
      ScheduleConfig c = config(pipeline, stages, 1, 1, Averaging::sync, 16);
      std::vector<int64_t> delays = forward_delays(build_programs(c), c);
      for (int s = 0; s < stages; ++s) EXPECT_EQ(delays[s], stages - 1 - s) << describe(c) << " stage " << s;
    }
  }
  ScheduleConfig four = config(Pipeline::stale, 4, 1, 1, Averaging::sync, 16);
  EXPECT_EQ(forward_delays(build_programs(four), four), (std::vector<int64_t>{3, 2, 1, 0}));
}

TEST(Builders, PipeDreamBackwardSeesItsForwardsWeightsAndStaleTheNewest) {
  for (Pipeline pipeline : {Pipeline::pipedream, Pipeline::stale}) {
    ScheduleConfig c = config(pipeline, 4, 1, 1, Averaging::sync, 12);
    const std::vector<Program> programs = build_programs(c);  // kept alive: the loop reads into it
    const Program& stage0 = programs[0];
    for (const Instruction& i : stage0.instructions) {
      if (const auto* b = std::get_if<BackwardData>(&i)) {
        const int64_t expected = pipeline == Pipeline::pipedream ? std::max<int64_t>(0, b->microbatch - 3) : b->microbatch;
        EXPECT_EQ(b->version, expected) << name_of(pipeline) << " " << to_string(i);
      }
    }
  }
}

TEST(Builders, DelayedAveragingComputesOnWeightsOneUpdateOld) {
  ScheduleConfig c = config(Pipeline::none, 1, 2, 2, Averaging::delayed, 6);
  const std::vector<Program> programs = build_programs(c);  // a range over a temporary's member would dangle
  for (const Instruction& i : programs[1].instructions) {
    if (const auto* f = std::get_if<Forward>(&i)) {
      EXPECT_EQ(f->version, std::max<int64_t>(0, f->microbatch / 2 - 1)) << to_string(i);
    }
  }
}

TEST(Simulator, GPipeIdleFractionAtUnitCostsIsTheBubble) {
  for (int stages = 1; stages <= 8; ++stages) {
    for (int microbatches = 1; microbatches <= 16; ++microbatches) {
      for (bool split : {false, true}) {
        ScheduleConfig c = config(stages == 1 ? Pipeline::none : Pipeline::gpipe, stages, microbatches, 1,
                                  Averaging::sync, 1, split);
        if (stages == 1) c.pipeline = Pipeline::gpipe;
        std::vector<Program> programs = build_programs(c);
        Simulation s = simulate(programs, unit_costs());
        ASSERT_FALSE(s.deadlocked);
        const double bubble = double(stages - 1) / double(microbatches + stages - 1);
        for (int r = 0; r < stages; ++r) {
          if (split)  // the weight gradients fill part of the drain
            EXPECT_LE(s.idle_fraction(r), bubble + 1e-12) << describe(c) << " rank " << r;
          else
            EXPECT_NEAR(s.idle_fraction(r), bubble, 1e-12) << describe(c) << " rank " << r;
        }
      }
    }
  }
}

TEST(Simulator, ZeroBubbleLeavesKMinusOneUnitsWhereGPipeLeavesTwice) {
  for (int stages = 1; stages <= 9; ++stages) {
    for (int microbatches = 1; microbatches <= 16; ++microbatches) {
      ScheduleConfig zb = config(Pipeline::zero_bubble, stages, microbatches, 1, Averaging::sync, 1);
      ScheduleConfig gpipe = config(stages == 1 ? Pipeline::none : Pipeline::gpipe, stages, microbatches, 1,
                                    Averaging::sync, 1, true);
      const double ours = simulate(build_programs(zb), unit_costs()).makespan;
      const double theirs = simulate(build_programs(gpipe), unit_costs()).makespan;
      SCOPED_TRACE(describe(zb));
      // Each microbatch is 3 units on every stage; with M ≥ K the fill costs only K − 1 more. No
      // order beats the last stage's start plus its work, or the first microbatch's round trip.
      if (microbatches >= stages) EXPECT_EQ(ours, 3 * microbatches + stages - 1);
      EXPECT_GE(ours, std::max(3 * microbatches + stages - 1, microbatches + 2 * stages));
      EXPECT_LE(ours, theirs);
      if (stages == 9 && microbatches == 16)
        std::printf("  K=9, M=16 at unit costs: zero bubble %.0f, gpipe with split backward %.0f\n", ours, theirs);
    }
  }
}

TEST(Simulator, SplitBackwardNeverSlowsAndHelpsOneForwardOneBackward) {
  ScheduleConfig unsplit = config(Pipeline::stale, 4, 1, 1, Averaging::sync, 16);
  ScheduleConfig split = unsplit;
  split.split_backward = true;
  const double before = simulate(build_programs(unsplit), unit_costs()).makespan;
  const double after = simulate(build_programs(split), unit_costs()).makespan;
  std::printf("  stale K=4, 16 microbatches at unit costs: makespan %.0f unsplit, %.0f split\n", before, after);
  EXPECT_LT(after, before);
}

// ---- broken programs are rejected, naming the instruction -------------------------------------

std::string rejection(const std::vector<Program>& programs, const ScheduleConfig& c) {
  try {
    validate(programs, c);
  } catch (const Error& e) {
    std::printf("  rejected: %s\n", e.message().c_str());
    return e.message();
  }
  return "";
}

template <class T>
size_t find_first(const Program& p, int64_t microbatch) {
  for (size_t k = 0; k < p.instructions.size(); ++k) {
    if (const auto* i = std::get_if<T>(&p.instructions[k]); i && i->microbatch == microbatch) return k;
  }
  ADD_FAILURE() << "instruction not found";
  return 0;
}

TEST(Validate, RejectsAMissingReceive) {
  ScheduleConfig c = config(Pipeline::gpipe, 2, 2, 1, Averaging::sync, 1);
  auto programs = build_programs(c);
  programs[1].instructions.erase(programs[1].instructions.begin() + long(find_first<RecvActivation>(programs[1], 1)));
  EXPECT_NE(rejection(programs, c).find("send-act 1 >r1): no rank receives it"), std::string::npos);
}

TEST(Validate, RejectsAnUnmatchedSend) {
  ScheduleConfig c = config(Pipeline::gpipe, 3, 2, 1, Averaging::sync, 1);
  auto programs = build_programs(c);
  programs[1].instructions.push_back(SendGrad{1, 1, 0});
  EXPECT_NE(rejection(programs, c).find("no rank receives it"), std::string::npos);
}

TEST(Validate, RejectsReceivesOutOfOrder) {
  ScheduleConfig c = config(Pipeline::gpipe, 2, 2, 1, Averaging::sync, 1);
  auto programs = build_programs(c);
  auto& last = programs[1].instructions;  // microbatch 0 goes forward before it has arrived
  std::swap(last[find_first<RecvActivation>(programs[1], 0)], last[find_first<RecvActivation>(programs[1], 1)]);
  EXPECT_NE(rejection(programs, c).find("the activation arrives after the forward"), std::string::npos);
}

TEST(Validate, RejectsACircularWait) {
  ScheduleConfig c = config(Pipeline::gpipe, 2, 1, 1, Averaging::sync, 1);
  auto programs = build_programs(c);
  auto& first = programs[0].instructions;  // rank 0 waits for the gradient before sending the activation
  std::swap(first[find_first<SendActivation>(programs[0], 0)], first[find_first<RecvGrad>(programs[0], 0)]);
  EXPECT_NE(rejection(programs, c).find("deadlock: rank 0 waits at instruction 2 (recv-grad 0 <r1); rank 1 waits"),
            std::string::npos);
}

TEST(Validate, RejectsASlotReusedWhileLive) {
  ScheduleConfig c = config(Pipeline::stale, 4, 1, 1, Averaging::sync, 8);
  auto programs = build_programs(c);
  for (Instruction& i : programs[0].instructions) {  // microbatch 1 into microbatch 0's slot
    std::visit([](auto& x) {
      if constexpr (requires { x.slot; x.microbatch; }) {
        if (x.microbatch == 1) x.slot = 0;
      }
    }, i);
  }
  EXPECT_NE(rejection(programs, c).find("still holds microbatch 0"), std::string::npos);
}

TEST(Validate, RejectsBackwardBeforeForward) {
  ScheduleConfig c = config(Pipeline::none, 1, 1, 1, Averaging::sync, 2);
  auto programs = build_programs(c);
  auto& p = programs[0].instructions;
  std::swap(p[find_first<Forward>(programs[0], 1)], p[find_first<BackwardData>(programs[0], 1)]);
  EXPECT_NE(rejection(programs, c).find("forward before backward"), std::string::npos);
}

TEST(Validate, RejectsAForwardOnTheWrongWeightVersion) {
  ScheduleConfig c = config(Pipeline::stale, 4, 1, 1, Averaging::sync, 8);
  auto programs = build_programs(c);
  std::get<Forward>(programs[1].instructions[find_first<Forward>(programs[1], 5)]).version += 1;
  EXPECT_NE(rejection(programs, c).find("version"), std::string::npos);
}

TEST(Validate, RejectsPipeDreamWithoutItsStash) {
  ScheduleConfig c = config(Pipeline::pipedream, 3, 1, 1, Averaging::sync, 6);
  auto programs = build_programs(c);
  auto& p = programs[0].instructions;
  p.erase(p.begin() + long(find_first<StashWeights>(programs[0], 4)));
  EXPECT_NE(rejection(programs, c).find("the weights at hand are version"), std::string::npos);
}

TEST(Validate, RejectsAnUpdateBeforeItsAverage) {
  ScheduleConfig c = config(Pipeline::none, 1, 1, 2, Averaging::sync, 2);
  auto programs = build_programs(c);
  auto& p = programs[1].instructions;
  p.erase(std::find_if(p.begin(), p.end(), [](const Instruction& i) { return std::holds_alternative<WaitAverage>(i); }));
  EXPECT_NE(rejection(programs, c).find("before its average arrived"), std::string::npos);
}

TEST(Config, RejectsUnsupportedCombinationsInOneSentence) {
  auto message = [](ScheduleConfig c) {
    try {
      check_config(c);
    } catch (const Error& e) {
      return e.message();
    }
    return std::string();
  };
  EXPECT_NE(message(config(Pipeline::stale, 4, 2, 1, Averaging::sync, 1)).find("--microbatches 1"), std::string::npos);
  EXPECT_NE(message(config(Pipeline::stale, 4, 1, 2, Averaging::delayed, 1)).find("delayed"), std::string::npos);
  EXPECT_NE(message(config(Pipeline::none, 4, 1, 1, Averaging::sync, 1)).find("--pipeline"), std::string::npos);
}

}  // namespace
}  // namespace baton::schedulers
