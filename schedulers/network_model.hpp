// The α–β network model the simulator prices communication with: a link within a node and one
// between nodes, ranks placed on nodes in blocks, and each collective priced by the algorithm
// baton's MPI uses (ring allreduce; reduce-scatter and all-gather for sharded averaging).
#pragma once

#include <string>
#include <vector>

namespace baton::schedulers {

// A message of b bytes takes latency + b / bandwidth seconds.
struct LinkCost {
  double latency = 0;    // seconds (α)
  double bandwidth = 0;  // bytes per second (β)
  double seconds(double bytes) const { return latency + bytes / bandwidth; }
};

struct NetworkModel {
  // Defaults for a user without a calibration (README, "Simulator"): shared memory within a node,
  // 10 Gbit/s Ethernet between nodes.
  LinkCost intra_node{2e-6, 5e9};
  LinkCost inter_node{25e-6, 1.25e9};
  int ranks_per_node = 1;  // ranks 0..n-1 on node 0, n..2n-1 on node 1, ...
  // Cores a node's ranks compute on: where its computing ranks' threads ask for more, they share
  // them (the simulator's CoreSharing). 0: unknown, every rank computes at full speed.
  double cores_per_node = 0;
  // Bytes per second at which a rank adds what it receives in a reduction (calibrated: an
  // allreduce's time beyond its ring transfers); 0: free.
  double reduction_bandwidth = 0;
  // Whether a collective's work on a node runs on the cores its ranks compute on (their threads use
  // them all): then a rank's core does its share of the reduction, and within one node, where
  // the transfers are copies by the processor, those too.
  bool reduction_steals_compute = false;
  // Seconds between two rounds in which baton's communication thread tests its requests: a message
  // is seen half of it late on average, and so is each step of a collective (the thread advances
  // Open MPI's non-blocking algorithms). 0: progress is free.
  double progress_interval = 1e-3;

  int node_of(int rank) const { return rank / ranks_per_node; }
  const LinkCost& link(int a, int b) const { return node_of(a) == node_of(b) ? intra_node : inter_node; }

  double point_to_point(double bytes, int from, int to) const {
    return link(from, to).seconds(bytes) + progress_interval / 2;
  }
  // A ring over `group` (its order is the ring's) moves bytes / R per step over its slowest link:
  // allreduce in 2(R−1) steps, reduce-scatter and all-gather in R−1 each; reducing adds (R−1)/R of
  // the bytes at the reduction bandwidth. One rank: free.
  double allreduce(double bytes, const std::vector<int>& group) const {
    return ring(bytes, group, 2) + reduction(bytes, group);
  }
  double reduce_scatter(double bytes, const std::vector<int>& group) const {
    return ring(bytes, group, 1) + reduction(bytes, group);
  }
  double all_gather(double bytes, const std::vector<int>& group) const { return ring(bytes, group, 1); }
  double reduction(double bytes, const std::vector<int>& group) const;
  // Of an allreduce (passes 2) or reduce-scatter (1): the seconds a rank's core spends on it.
  double compute_stolen(double bytes, const std::vector<int>& group, int passes) const;

  // Throws one sentence naming the field when a value cannot describe a network.
  void check() const;

 private:
  double ring(double bytes, const std::vector<int>& group, int passes) const;
  const LinkCost& slowest_link(const std::vector<int>& group) const;
  bool within_one_node(const std::vector<int>& group) const;
};

}  // namespace baton::schedulers
