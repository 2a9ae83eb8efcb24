// `baton profile`: each layer's measured forward, data-gradient and weight-gradient seconds at the
// microbatch sizes asked, the passes' time outside the layers, and the optimizer's time per
// parameter, as a JSON cost file that `baton simulate` and `--partition-by FILE` read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/model_spec.hpp"
#include "layers/partition.hpp"
#include "runtime/app/cli.hpp"
#include "schedulers/network_model.hpp"

namespace baton {

struct PassSeconds {
  double forward = 0, data_gradient = 0, weight_gradient = 0;
  double total() const { return forward + data_gradient + weight_gradient; }
  PassSeconds operator+(const PassSeconds& o) const {
    return {forward + o.forward, data_gradient + o.data_gradient, weight_gradient + o.weight_gradient};
  }
  PassSeconds operator*(double factor) const { return {forward * factor, data_gradient * factor, weight_gradient * factor}; }
};

struct CostProfile {
  std::string model;
  std::string backend;
  int threads = 1;
  int ranks = 1;                                       // measuring at once (under mpirun); times are their mean
  int ranks_per_node = 1;                              // of them, on rank 0's node
  int cores = 0;                                       // rank 0's node's; 0: not recorded (an older file)
  std::vector<int64_t> microbatch_sizes;               // ascending
  std::vector<std::string> node_names;                 // the model's, in order
  std::vector<std::vector<PassSeconds>> node_seconds;  // [size][node], median of the repeats
  std::vector<std::vector<PassSeconds>> weight_refresh;  // [size][node]: extra of a pass after a weight change
  std::vector<PassSeconds> outside_nodes;              // [size]: a whole pass minus its nodes (reorders, sums)
  double optimizer_seconds_per_param = 0;

  // One node's passes at `microbatch` images: linear between the measured sizes around it, and
  // proportional to the size from the nearest one outside them.
  PassSeconds node(int index, int64_t microbatch) const;
  PassSeconds outside(int64_t microbatch) const;  // the same for the time outside the nodes
  // What a node's first forward and data gradient with new weights cost more (converting them into
  // the kernels' layouts): the nearest measured size's, as it hardly depends on the images.
  PassSeconds refresh(int index, int64_t microbatch) const;
  // The share of a core's speed each rank computed at while measuring: cores / (ranks × threads)
  // where its node's ranks asked for more cores than it has, else 1 (also when cores is unknown).
  double measured_speed() const;
};

// Measures `model` on this machine: per size, one untimed pass, then `repeats` timed ones.
CostProfile measure_profile(const layers::ModelSpec& model, const ProfileCommand& command);

nlohmann::json to_json(const CostProfile& profile);
// Reads a cost file written by `baton profile` for `model`; one sentence when it is missing,
// corrupt, or made for another model.
CostProfile read_profile(const std::string& path, const layers::ModelSpec& model);

// What --partition-by FILE balances: each node's profiled seconds at `microbatch` images, and per
// cut the seconds to send what crosses it forward and its gradient back over `link`.
struct ProfiledBalance {
  std::vector<layers::NodeCost> costs;
  std::vector<double> cut_costs;
};
ProfiledBalance profiled_balance(const layers::ModelSpec& model, const CostProfile& profile, int64_t microbatch,
                                 const schedulers::LinkCost& link);

// `baton profile`: measures, writes --output, prints a per-layer table.
void run_profile(const ProfileCommand& command, std::ostream& out);

}  // namespace baton
