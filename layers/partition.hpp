// The stage partitioner: splits a model's nodes into K contiguous pipeline stages, either balanced
// from per-node costs (exact minimum of the slowest stage, with an optional memory limit) or as
// given by the user with --partition. Same input, same answer on every rank.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "layers/model_spec.hpp"

namespace baton::layers {

// What a node costs for balancing. work: by node_costs(), training FLOPs per image (forward, data
// and weight gradients; no data gradient for a node that reads only the images) plus
// kNodeOverheadFlops, so that FLOP-free layers still count a little; by measured_costs(), seconds
// of its three passes on this machine. param_bytes: its parameters in f32. activation_bytes: its
// output per image in f32.
struct NodeCost {
  double work;
  int64_t param_bytes;
  int64_t activation_bytes;
};
constexpr double kNodeOverheadFlops = 1e5;

std::vector<NodeCost> node_costs(const ModelSpec& model);

// node_costs() with `work` replaced by each node's measured seconds for one microbatch: the whole
// model run `passes` times (after one untimed pass) with these network options.
struct NetworkOptions;
std::vector<NodeCost> measured_costs(const ModelSpec& model, const NetworkOptions& options, int passes);

// The first node of every stage: first_nodes[0] == 0, strictly increasing, one per stage. Stage k
// covers [first_nodes[k], first_nodes[k + 1]) and the last stage ends at the model's end.
struct Partition {
  std::vector<int> first_nodes;
};

// [first, last) node range of each stage of `partition` over a model of `node_count` nodes;
// throws when the partition does not describe non-empty stages of such a model.
std::vector<std::pair<int, int>> stage_ranges(const Partition& partition, int node_count);

// Per cut c (0..n; a stage boundary before node c), the bytes per image of the values that cross
// it: produced before node c and read at or after it (the images excepted). 0 at both ends.
std::vector<int64_t> cut_bytes_per_image(const ModelSpec& model);

// The contiguous split into `stages` stages that minimises the most expensive stage (exact), with
// at most `max_param_bytes_per_stage` parameter bytes in any stage (0: no limit). A stage costs
// its nodes' work plus, when given (n + 1 values, 0 at both ends), cut_costs[c] for each of its
// boundaries: what sending across the cut costs both stages beside it. Among the splits with that
// bottleneck it takes the one with the smallest sum of squared stage costs; remaining ties give
// later stages the extra nodes. Throws one sentence when stages < 1, stages > nodes, or the limit
// cannot be met (naming the smallest limit that can).
Partition balance_stages(const std::vector<NodeCost>& costs, int stages, int64_t max_param_bytes_per_stage = 0,
                         const std::vector<double>& cut_costs = {});

// Parses --partition: comma-separated places where stages 2..K begin, each a node index or a node
// name of `model` ("layer2.0.conv1,layer3.0.conv1" or "7,19"). `stages` is the expected K, or -1
// to accept any count. Throws one sentence for an unknown name, an index out of range, boundaries
// out of order, an empty stage, or a count that does not make `stages` stages.
Partition parse_partition(const std::string& text, const ModelSpec& model, int stages);

// Per-stage totals for reporting, and their imbalance (largest stage FLOPs over the mean).
struct StageLoad {
  double work;
  int64_t param_bytes;
};
std::vector<StageLoad> stage_loads(const std::vector<NodeCost>& costs, const Partition& partition);
double load_imbalance(const std::vector<StageLoad>& loads);

}  // namespace baton::layers
