// Implementation of the collectives' prices.
#include "schedulers/network_model.hpp"

#include <cmath>

#include "runtime/base/error.hpp"

namespace baton::schedulers {

void NetworkModel::check() const {
  for (auto [link, name] : {std::pair{&intra_node, "intra_node"}, {&inter_node, "inter_node"}}) {
    BATON_CHECK(std::isfinite(link->latency) && link->latency >= 0,
                "the network's " << name << " latency must be 0 or more seconds, not " << link->latency);
    BATON_CHECK(std::isfinite(link->bandwidth) && link->bandwidth > 0,
                "the network's " << name << " bandwidth must be a positive number of bytes per second, not "
                                 << link->bandwidth);
  }
  BATON_CHECK(std::isfinite(reduction_bandwidth) && reduction_bandwidth >= 0,
              "the network's reduction bandwidth must be 0 (free) or a positive number of bytes per second, not "
                  << reduction_bandwidth);
  BATON_CHECK(std::isfinite(progress_interval) && progress_interval >= 0,
              "the network's progress interval must be 0 or more seconds, not " << progress_interval);
  BATON_CHECK(ranks_per_node >= 1, "ranks per node must be at least 1, not " << ranks_per_node);
  BATON_CHECK(std::isfinite(cores_per_node) && cores_per_node >= 0,
              "the network's cores per node must be 0 (unknown) or more, not " << cores_per_node);
}

bool NetworkModel::within_one_node(const std::vector<int>& group) const {
  for (int rank : group)
    if (node_of(rank) != node_of(group.front())) return false;
  return true;
}

const LinkCost& NetworkModel::slowest_link(const std::vector<int>& group) const {
  return within_one_node(group) ? intra_node : inter_node;
}

double NetworkModel::compute_stolen(double bytes, const std::vector<int>& group, int passes) const {
  if (!reduction_steals_compute) return 0;
  return reduction(bytes, group) + (within_one_node(group) ? ring(bytes, group, passes) : 0.0);
}

double NetworkModel::reduction(double bytes, const std::vector<int>& group) const {
  if (group.size() < 2 || reduction_bandwidth == 0) return 0;
  const double r = double(group.size());
  return (r - 1) / r * bytes / reduction_bandwidth;
}

double NetworkModel::ring(double bytes, const std::vector<int>& group, int passes) const {
  const double r = double(group.size());
  if (group.size() < 2) return 0;
  const LinkCost& link = slowest_link(group);
  return passes * (r - 1) * (link.seconds(bytes / r) + progress_interval / 2);
}

}  // namespace baton::schedulers
