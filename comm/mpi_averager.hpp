// GradientAverager over MPI: a stage's replicas average each bucket (part) of its gradient with a
// non-blocking allreduce, or with sharding a reduce-scatter followed by an all-gather of the
// updated weights. Collectives are issued in program order, which is the same on every replica.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "comm/engine.hpp"
#include "comm/topology.hpp"
#include "schedulers/executor.hpp"

namespace baton::comm {

class MpiAverager final : public schedulers::Averager {
 public:
  MpiAverager(Engine& engine, const Topology& topology, bool sharded);

  void start(int64_t update, int part, std::span<float> gradient) override;
  bool try_finish(int64_t update, int part) override;
  std::pair<size_t, size_t> shard(size_t size) const override;
  void start_gather(int64_t update, int part, std::span<const float> weights) override;
  bool try_finish_gather(int64_t update, int part, std::span<float> weights) override;

 private:
  struct InFlight {
    Engine::Handle handle;
    std::span<float> gradient;  // summed in place, or (sharded) its shard receives shard_sum
    std::vector<float> shard_sum;
  };
  std::vector<float> reused_buffer(int part, size_t size);
  Engine& engine_;
  const Topology& topology_;
  bool sharded_;
  std::map<std::pair<int64_t, int>, InFlight> averages_;
  std::map<std::pair<int64_t, int>, Engine::Handle> gathers_;
  std::map<int, std::vector<float>> spare_buffers_;  // sharded: each bucket's last shard buffer, reused
};

}  // namespace baton::comm
