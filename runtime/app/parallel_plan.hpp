// From the command line's parallel options to schedules: which pipeline an epoch uses (hybrid
// switches from stale to gpipe), and the ScheduleConfig of an epoch's programs.
#pragma once

#include <string>
#include <vector>

#include "runtime/app/cli.hpp"
#include "schedulers/builders.hpp"

namespace baton {

// The pipeline of epoch `epoch` (1-based) of `epochs`; "hybrid" is stale before the switch epoch.
schedulers::Pipeline pipeline_for_epoch(const ParallelConfig& parallel, int64_t epoch, int64_t epochs);

// The mitigations --staleness asks for in an epoch with this pipeline; "auto" is lr-scale for
// stale and pipedream and momentum,predict for delayed averaging (README, "Staleness mitigations").
Mitigations mitigations_for(const ParallelConfig& parallel, schedulers::Pipeline pipeline);

std::string to_string(const Mitigations& mitigations);  // "lr-scale,predict", or "none"

schedulers::ScheduleConfig schedule_for(const ParallelConfig& parallel, schedulers::Pipeline pipeline, int64_t steps,
                                        std::vector<int> parts = {});

// `baton schedule`: every rank's program, a time × rank diagram at unit costs, idle fractions and
// forward delays; with --timeline, the unit-cost run as a Chrome trace.
void print_schedule(const ScheduleCommand& command, std::ostream& out);

}  // namespace baton
