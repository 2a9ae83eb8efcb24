// Schedules as data: the instructions one rank executes, and a Program per rank. Every training
// mode is a builder that emits the programs of all ranks at once (builders.hpp), which validate()
// checks globally and the executor runs. Nothing here knows kernels or MPI.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace baton::schedulers {

// A microbatch is named by its global index: step * microbatches_per_step + position in the step.
// A part is a contiguous range of the stage's layers (a gradient bucket); most modes have one.

struct LoadBatch {        // first stage: the microbatch's images; last stage: its labels
  int64_t microbatch;
  int slot;
};
struct Forward {
  int64_t microbatch;
  int slot;
  int part;
  int64_t version;        // weight version (updates applied to this part) the pass must see
};
struct BackwardData {
  int64_t microbatch;
  int slot;
  int part;
  int64_t version;
};
struct BackwardWeights {  // accumulates into the stage's gradient
  int64_t microbatch;
  int slot;
  int part;
};
struct SendActivation {
  int64_t microbatch;
  int slot;
  int to;                 // rank
};
struct RecvActivation {
  int64_t microbatch;
  int slot;
  int from;
};
struct SendGrad {
  int64_t microbatch;
  int slot;
  int to;
};
struct RecvGrad {
  int64_t microbatch;
  int slot;
  int from;
};
struct StashWeights {     // keep the current weights for this microbatch's backward (PipeDream)
  int64_t microbatch;
};
// Averaging of one update's gradient over the replicas of a stage. With sharding, Start is a
// reduce-scatter and each replica updates its own shard; the updated weights are then gathered.
struct StartAverage {
  int64_t update;
  int part;
};
struct WaitAverage {
  int64_t update;
  int part;
};
struct OptimizerStep {    // applies update number `update` (0-based) to a part; zeroes its gradient
  int64_t update;
  int part;
};
struct StartGather {      // sharded: all-gather of the updated weights
  int64_t update;
  int part;
};
struct WaitGather {
  int64_t update;
  int part;
};

using Instruction = std::variant<LoadBatch, Forward, BackwardData, BackwardWeights, SendActivation, RecvActivation,
                                 SendGrad, RecvGrad, StashWeights, StartAverage, WaitAverage, OptimizerStep,
                                 StartGather, WaitGather>;

std::string to_string(const Instruction& instruction);  // "F3.1 s0 v2": forward of microbatch 3, part 1, ...

struct Program {
  int rank = 0;
  int stage = 0;
  int replica = 0;
  int slots = 1;   // microbatches in flight at most (saved activations)
  int parts = 1;
  std::vector<Instruction> instructions;
};

}  // namespace baton::schedulers
