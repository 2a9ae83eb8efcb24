// Implementation of the network probe: medians of timed ping-pongs and allreduces, with rank 0's
// findings broadcast so every rank reports the same model.
#include "comm/network_probe.hpp"

#include <omp.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "comm/engine.hpp"
#include "runtime/base/error.hpp"

namespace baton::comm {
namespace {

// Large enough to leave the caches, as a model's gradient does.
constexpr int kSmallBytes = 8, kLargeBytes = 64 << 20, kAllreduceFloats = 16 << 20;

double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + long(values.size() / 2), values.end());
  return values[values.size() / 2];
}

// One-way seconds of a `bytes` message between world ranks 0 and `peer` (half the median round
// trip); every rank calls it, the others only wait at the barrier. Valid on rank 0.
double one_way(MPI_Comm world, int peer, int bytes, int repeats) {
  int rank = 0;
  MPI_Comm_rank(world, &rank);
  std::vector<char> buffer(size_t(bytes), 1);
  std::vector<double> trips;
  MPI_Barrier(world);
  for (int r = 0; r <= repeats; ++r) {
    if (rank == 0) {
      const double start = MPI_Wtime();
      MPI_Send(buffer.data(), bytes, MPI_CHAR, peer, 0, world);
      MPI_Recv(buffer.data(), bytes, MPI_CHAR, peer, 0, world, MPI_STATUS_IGNORE);
      if (r > 0) trips.push_back(MPI_Wtime() - start);  // the first warms the connection
    } else if (rank == peer) {
      MPI_Recv(buffer.data(), bytes, MPI_CHAR, 0, 0, world, MPI_STATUS_IGNORE);
      MPI_Send(buffer.data(), bytes, MPI_CHAR, 0, 0, world);
    }
  }
  MPI_Barrier(world);
  return rank == 0 ? median(trips) / 2 : 0.0;
}

// The link between rank 0 and `peer`, from a small and a large message.
schedulers::LinkCost measure_link(MPI_Comm world, int peer, int repeats) {
  const double small = one_way(world, peer, kSmallBytes, repeats);
  const double large = one_way(world, peer, kLargeBytes, repeats);
  schedulers::LinkCost link{small, double(kLargeBytes - kSmallBytes) / std::max(large - small, 1e-9)};
  MPI_Bcast(&link, sizeof(link), MPI_BYTE, 0, world);
  return link;
}

double allreduce_seconds(MPI_Comm world, int repeats) {
  std::vector<float> data(size_t(kAllreduceFloats), 1.0f);
  std::vector<double> seconds;
  for (int r = 0; r <= repeats; ++r) {
    MPI_Barrier(world);
    const double start = MPI_Wtime();
    MPI_Request request;  // non-blocking, as the averager's: Open MPI runs another algorithm for it
    MPI_Iallreduce(MPI_IN_PLACE, data.data(), kAllreduceFloats, MPI_FLOAT, MPI_SUM, world, &request);
    MPI_Wait(&request, MPI_STATUS_IGNORE);
    double elapsed = MPI_Wtime() - start;
    MPI_Allreduce(MPI_IN_PLACE, &elapsed, 1, MPI_DOUBLE, MPI_MAX, world);
    if (r > 0) seconds.push_back(elapsed);
  }
  return median(seconds);
}

}  // namespace

NetworkProbe probe_network(MPI_Comm world, int repeats) {
  int rank = 0, size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  BATON_CHECK(size >= 2, "baton profile --network times messages between ranks; start it with mpirun -n 2 or more "
                         "(2 ranks on each of 2 nodes measures both links)");
  MPI_Comm node;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  int node_leader = rank, ranks_here = 1;
  MPI_Allreduce(MPI_IN_PLACE, &node_leader, 1, MPI_INT, MPI_MIN, node);
  MPI_Comm_size(node, &ranks_here);
  MPI_Comm_free(&node);
  std::vector<int> leaders(static_cast<size_t>(size), 0);
  MPI_Allgather(&node_leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, world);
  NetworkProbe probe;  // nodes starts at 1: rank 0's
  probe.model.ranks_per_node = ranks_here;
  for (int r = 0; r < size; ++r) probe.nodes += leaders[size_t(r)] == r && r > 0;
  const auto same_node = std::find_if(leaders.begin() + 1, leaders.end(), [](int leader) { return leader == 0; });
  const auto other_node = std::find_if(leaders.begin() + 1, leaders.end(), [](int leader) { return leader != 0; });
  if (same_node != leaders.end()) {
    probe.model.intra_node = measure_link(world, int(same_node - leaders.begin()), repeats);
    probe.intra_measured = true;
  }
  if (other_node != leaders.end()) {
    probe.model.inter_node = measure_link(world, int(other_node - leaders.begin()), repeats);
    probe.inter_measured = true;
  }
  std::vector<int> everyone(static_cast<size_t>(size), 0);
  for (int r = 0; r < size; ++r) everyone[size_t(r)] = r;
  probe.allreduce_bytes = double(kAllreduceFloats) * sizeof(float);
  probe.allreduce_seconds = allreduce_seconds(world, repeats);
  // The probe drives MPI itself (no communication thread): what the transfers do not explain is
  // the reduction's arithmetic and memory traffic.
  probe.model.progress_interval = 0;
  const double transfers = probe.model.allreduce(probe.allreduce_bytes, everyone);
  const double reducing = probe.allreduce_seconds - transfers;
  if (reducing > 0) probe.model.reduction_bandwidth = (size - 1.0) / size * probe.allreduce_bytes / reducing;
  // Rank 0's node: do its ranks' compute threads leave a core for the communication threads?
  int steals = ranks_here * omp_get_max_threads() >= int(std::thread::hardware_concurrency());
  MPI_Bcast(&steals, 1, MPI_INT, 0, world);
  probe.model.reduction_steals_compute = steals;
  int cores = int(std::thread::hardware_concurrency());
  MPI_Bcast(&cores, 1, MPI_INT, 0, world);
  probe.model.cores_per_node = cores;
  probe.model.progress_interval = kThreadTestInterval;  // what baton's communication thread adds
  probe.allreduce_transfers = transfers;
  return probe;
}

}  // namespace baton::comm
