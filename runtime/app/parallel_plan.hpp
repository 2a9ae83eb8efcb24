// From the command line's parallel options to schedules: which pipeline an epoch uses (hybrid
// switches from stale to gpipe), and the ScheduleConfig of an epoch's programs.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runtime/app/cli.hpp"
#include "schedulers/builders.hpp"

namespace baton {

// The pipeline of epoch `epoch` (1-based) of `epochs` as configured; "hybrid" is stale before the
// switch epoch (with --hybrid-plateau, EpochPipelines may switch earlier).
schedulers::Pipeline pipeline_for_epoch(const ParallelConfig& parallel, int64_t epoch, int64_t epochs);

// Which pipeline each epoch of a run uses. Only hybrid changes: stale before --hybrid-switch-epoch,
// or with --hybrid-plateau F until the first epoch whose mean training loss fell by less than a
// fraction F of the previous epoch's (then without pipelining from the next epoch on; a given
// --hybrid-switch-epoch is then the latest switch).
class EpochPipelines {
 public:
  EpochPipelines(const ParallelConfig& parallel, int64_t epochs) : p_(parallel), epochs_(epochs) {}
  schedulers::Pipeline of(int64_t epoch) const;
  // After `epoch` ended with mean training loss `loss` (as rank 0 knows it; `agree` gives every
  // rank rank 0's decision): whether the plateau switch happens now.
  bool switch_after(int64_t epoch, double loss, const std::function<bool(bool)>& agree);
  // For checkpoints: the switch epoch decided (0: none yet) and the last epoch's loss (-1: none).
  int64_t plateau_switch_epoch() const { return plateau_switch_epoch_; }
  double last_loss() const { return last_loss_; }
  void restore(int64_t plateau_switch_epoch, double last_loss);

 private:
  const ParallelConfig& p_;
  int64_t epochs_;
  int64_t plateau_switch_epoch_ = 0;
  double last_loss_ = -1;
};

// Per stage, the mitigations --staleness asks for in an epoch with this pipeline and these forward
// delays: none for a stage without delay. "auto" is predict,warmup for stale, pipedream and layerpipe,
// with lr-scale too when some stage is more than 3 updates behind, and local for delayed averaging
// (README, "Staleness mitigations").
std::vector<Mitigations> mitigations_for(const ParallelConfig& parallel, schedulers::Pipeline pipeline,
                                         const std::vector<int64_t>& forward_delays);

std::string to_string(const Mitigations& mitigations);  // "lr-scale,predict", or "none"

schedulers::ScheduleConfig schedule_for(const ParallelConfig& parallel, schedulers::Pipeline pipeline, int64_t steps,
                                        std::vector<int> parts = {});

// `baton schedule`: every rank's program, a time × rank diagram at unit costs, idle fractions and
// forward delays; with --timeline, the unit-cost run as a Chrome trace.
void print_schedule(const ScheduleCommand& command, std::ostream& out);

}  // namespace baton
