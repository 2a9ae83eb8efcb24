// Program builders: one function emits the programs of every rank of a stages × replicas grid for
// one training mode (DESIGN.md §1). Ranks are numbered replica-major: rank = replica * stages + stage.
// Versions and microbatch numbers are relative to the start of the program (an epoch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "schedulers/instruction.hpp"

namespace baton::schedulers {

// none: one stage (sequential or data parallel). zero_bubble: GPipe's arithmetic (every microbatch
// of an update sees the same weights) in a zero-bubble order (Qi et al.): each backward split into
// the data gradient, sent at once, and the weight gradient, which fills the bubbles.
// layerpipe: the lock-step pipeline of the LayerPipe and stale-weights analyses: at every step
// stage s runs the forward of microbatch c − s and the split backward of c − 2(K−1) + s, so its
// forwards see weights d_s = 2(K−1−s) updates old and its backwards the newest, as stale does.
enum class Pipeline { none, gpipe, pipedream, stale, zero_bubble, layerpipe };

// The asynchronous pipelines: pipedream, stale and layerpipe update after every microbatch.
bool updates_every_microbatch(Pipeline pipeline);
enum class Averaging { sync, overlap, delayed, sharded };

Pipeline parse_pipeline(const std::string& name);  // "none", "gpipe", "pipedream", "stale", "zb", "layerpipe"
Averaging parse_averaging(const std::string& name);    // "sync", "overlap", "delayed", "sharded"
std::string name_of(Pipeline pipeline);
std::string name_of(Averaging averaging);

struct ScheduleConfig {
  int stages = 1;          // K
  int replicas = 1;        // R
  int microbatches = 1;    // M per update: gradients accumulate over them (1F1B modes: must be 1)
  int64_t steps = 1;       // updates (minibatches) in the program
  Pipeline pipeline = Pipeline::none;
  Averaging averaging = Averaging::sync;
  bool split_backward = false;  // LayerPipe: a stage sends its input gradient before computing its weight gradient
  std::vector<int> parts;       // gradient buckets per stage (empty: 1 each); only overlap and sharded use several
};

// Throws baton::Error with one sentence when the combination is not supported.
void check_config(const ScheduleConfig& config);

int rank_of(int stage, int replica, int stages);
int stage_of(int rank, int stages);
int replica_of(int rank, int stages);

std::vector<Program> build_programs(const ScheduleConfig& config);

}  // namespace baton::schedulers
