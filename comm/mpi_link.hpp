// StageLink over MPI: one message per (direction, microbatch) between neighbouring stages of a
// replica, on the replica's pipeline communicator, tagged by both; sends never block; receives are
// posted ahead of need from the program; message buffers come from a pool and are reused. Construction exchanges the tensor sizes with
// both neighbours once, so ranks built from different models fail with one sentence.
#pragma once

#include <map>
#include <tuple>
#include <vector>

#include "comm/engine.hpp"
#include "comm/topology.hpp"
#include "schedulers/executor.hpp"

namespace baton::comm {

struct BoundarySizes {
  std::vector<size_t> activations_in, activations_out;  // floats per tensor entering / leaving
};

class MpiLink final : public schedulers::Link {
 public:
  MpiLink(Engine& engine, const Topology& topology, const BoundarySizes& sizes);
  ~MpiLink() override;

  // Receives of this program are posted this many ahead of the one the executor waits for.
  void begin_program(const schedulers::Program& program, size_t lookahead = 4);
  void finish();  // waits for every send to complete

  void send(schedulers::Direction direction, int64_t microbatch, int to,
            std::vector<std::span<const float>> payload) override;
  bool try_receive(schedulers::Direction direction, int64_t microbatch, int from,
                   std::vector<std::span<float>> into) override;

 private:
  using Key = std::tuple<schedulers::Direction, int64_t, int>;  // (direction, microbatch, peer)
  struct Pending {
    Engine::Handle handle;
    std::vector<float> buffer;
  };
  int peer(int world_rank) const;
  int tag_of(schedulers::Direction direction, int64_t microbatch) const;
  size_t message_size(schedulers::Direction direction) const;
  void post(const Key& key);
  void post_ahead();
  void reap_sends();
  std::vector<float> take_buffer(size_t size);
  void handshake();

  Engine& engine_;
  const Topology& topology_;
  BoundarySizes sizes_;
  int tag_limit_ = 32767;
  std::vector<Key> expected_;   // this program's receives, in order
  size_t next_to_post_ = 0, lookahead_ = 4;
  std::map<Key, Pending> receives_;
  std::vector<Pending> sends_;
  std::vector<std::vector<float>> pool_;
};

}  // namespace baton::comm
