// Calibrates the simulator's network model under mpirun: ping-pong between world rank 0 and a rank
// on its own node and one on another node (latency from small messages, bandwidth from large
// ones), and one allreduce over the world: what its ring transfers do not explain is the reduction,
// which gives the model's reduction bandwidth.
#pragma once

#include <mpi.h>

#include "schedulers/network_model.hpp"

namespace baton::comm {

struct NetworkProbe {
  schedulers::NetworkModel model;  // a link that could not be measured keeps its default
  bool intra_measured = false, inter_measured = false;
  int nodes = 1;
  double allreduce_bytes = 0, allreduce_seconds = 0;
  double allreduce_transfers = 0;  // the ring's price of the allreduce's transfers alone
};

// Collective over `world`; every rank gets the same result. `repeats` timed exchanges per size.
NetworkProbe probe_network(MPI_Comm world, int repeats);

}  // namespace baton::comm
