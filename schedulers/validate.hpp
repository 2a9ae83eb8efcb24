// Global checks of a set of programs against the configuration they were built for: every send
// has exactly one matching receive, the programs finish under blocking semantics, no slot is
// reused while live, each microbatch goes forward before backward, and every pass sees the weight
// version its mode prescribes (DESIGN.md §1). The first offending instruction is named.
#pragma once

#include <vector>

#include "schedulers/builders.hpp"

namespace baton::schedulers {

// Throws baton::Error naming the rank, the instruction's index and what is wrong.
void validate(const std::vector<Program>& programs, const ScheduleConfig& config);

// The weight version each forward of a microbatch must see, by mode: the number of updates of
// its stage applied before it.
int64_t expected_forward_version(const ScheduleConfig& config, int stage, int64_t microbatch);

// Per stage: the largest forward weight delay (updates between the weights a forward sees and
// the update its own gradient belongs to) over the program, read from the instructions.
std::vector<int64_t> forward_delays(const std::vector<Program>& programs, const ScheduleConfig& config);

}  // namespace baton::schedulers
