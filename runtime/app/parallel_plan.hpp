// From the command line's parallel options to schedules: which pipeline an epoch uses (hybrid
// switches from stale to gpipe), and the ScheduleConfig of an epoch's programs.
#pragma once

#include <vector>

#include "runtime/app/cli.hpp"
#include "schedulers/builders.hpp"

namespace baton {

// The pipeline of epoch `epoch` (1-based) of `epochs`; "hybrid" is stale before the switch epoch.
schedulers::Pipeline pipeline_for_epoch(const ParallelConfig& parallel, int64_t epoch, int64_t epochs);

schedulers::ScheduleConfig schedule_for(const ParallelConfig& parallel, schedulers::Pipeline pipeline, int64_t steps,
                                        std::vector<int> parts = {});

// `baton schedule`: every rank's program, a time × rank diagram at unit costs, idle fractions and
// forward delays; with --timeline, the unit-cost run as a Chrome trace.
void print_schedule(const ScheduleCommand& command, std::ostream& out);

}  // namespace baton
