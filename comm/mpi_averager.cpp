// Implementation of MpiAverager: sums in place in the worker's gradient buffer (the worker divides
// by the replica count as it reads them, as with the in-process twin); with two replicas the sums
// agree bit for bit (a + b = b + a).
#include "comm/mpi_averager.hpp"

#include <algorithm>

#include "runtime/base/error.hpp"

namespace baton::comm {

MpiAverager::MpiAverager(Engine& engine, const Topology& topology, bool sharded)
    : engine_(engine), topology_(topology), sharded_(sharded) {}

std::pair<size_t, size_t> MpiAverager::shard(size_t size) const {
  if (!sharded_) return {0, size};
  const size_t replicas = size_t(topology_.replicas()), replica = size_t(topology_.replica());
  return {size * replica / replicas, size * (replica + 1) / replicas};
}

std::vector<float> MpiAverager::reused_buffer(int part, size_t size) {
  std::vector<float> buffer = std::move(spare_buffers_[part]);  // empty when this bucket is in flight twice
  buffer.resize(size);
  return buffer;
}

void MpiAverager::start(int64_t update, int part, std::span<float> gradient) {
  InFlight flight;
  flight.gradient = gradient;
  if (sharded_) {
    auto [begin, end] = shard(gradient.size());
    flight.shard_sum = reused_buffer(part, end - begin);
    flight.handle = engine_.reduce_scatter_sum(gradient.data(), flight.shard_sum.data(),
                                               block_counts(gradient.size(), topology_.replicas()),
                                               topology_.stage_comm());
  } else {
    flight.handle = engine_.allreduce_sum(gradient.data(), int(gradient.size()), topology_.stage_comm());
  }
  auto [it, fresh] = averages_.emplace(std::make_pair(update, part), std::move(flight));
  BATON_CHECK(fresh, "the average of update " << update << ", bucket " << part << " was started twice");
}

bool MpiAverager::try_finish(int64_t update, int part) {
  auto it = averages_.find({update, part});
  BATON_CHECK(it != averages_.end(), "no average of update " << update << ", bucket " << part << " was started");
  if (!engine_.done(it->second.handle)) return false;
  if (sharded_) {
    InFlight& flight = it->second;
    std::copy(flight.shard_sum.begin(), flight.shard_sum.end(),
              flight.gradient.begin() + long(shard(flight.gradient.size()).first));
    spare_buffers_[part] = std::move(flight.shard_sum);
  }
  averages_.erase(it);
  return true;
}

void MpiAverager::start_gather(int64_t update, int part, std::span<const float> weights) {
  // In place: this replica's shard of `weights` is current; the others arrive into the same buffer.
  Engine::Handle handle = engine_.allgather(const_cast<float*>(weights.data()),
                                            block_counts(weights.size(), topology_.replicas()), topology_.stage_comm());
  gathers_.emplace(std::make_pair(update, part), handle);
}

bool MpiAverager::try_finish_gather(int64_t update, int part, std::span<float> /*weights*/) {
  auto it = gathers_.find({update, part});
  BATON_CHECK(it != gathers_.end(), "no gather of update " << update << ", bucket " << part << " was started");
  if (!engine_.done(it->second)) return false;
  gathers_.erase(it);
  return true;
}

}  // namespace baton::comm
