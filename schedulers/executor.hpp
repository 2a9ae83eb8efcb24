// The executor runs one rank's program against interfaces: the rank's compute (StageWorker), its
// links to neighbouring stages (Link) and the averaging over replicas (Averager). In-process twins
// of the links run a whole configuration in one process; MPI ones run it across ranks. The
// executor holds the schedule to its word: each pass must see the weight version it names.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/base/timeline.hpp"
#include "schedulers/instruction.hpp"

namespace baton::schedulers {

enum class Direction { activation, gradient };

// What a rank computes: one stage of the model with its weights, gradient and optimizer.
class StageWorker {
 public:
  virtual ~StageWorker() = default;
  virtual void load_batch(int64_t microbatch, int slot) = 0;
  // The passes return the weight version they used (the part's updates, or a stash's).
  virtual int64_t forward(int64_t microbatch, int slot, int part) = 0;
  virtual int64_t backward_data(int64_t microbatch, int slot, int part) = 0;  // a stash if the microbatch has one
  virtual void backward_weights(int64_t microbatch, int slot, int part) = 0;
  virtual void stash_weights(int64_t microbatch) = 0;
  // Tensors crossing to the neighbour: activations leaving / entering, gradients entering / leaving.
  virtual std::vector<std::span<const float>> outgoing(Direction direction, int slot) = 0;
  virtual std::vector<std::span<float>> incoming(Direction direction, int slot) = 0;
  // The part's gradient, accumulated over the update's microbatches, handed to the averager, which
  // sums it over the replicas in place: the worker accumulates the next update's gradient in
  // another buffer meanwhile (no copy), and reads the sum when it applies that update.
  virtual std::span<float> hand_over_gradient(int part) = 0;
  virtual std::span<float> weights(int part) = 0;
  // Applies update `update` to elements [begin, end) of the part (all of it unless sharded), from
  // the sum handed over (divided by the replicas as it is read) or else the local gradient; the
  // buffer read is zeroed, ready for a later update.
  virtual void optimizer_step(int64_t update, int part, bool averaged, size_t begin, size_t end) = 0;
  virtual void weights_changed(int part) = 0;  // gathered weights arrived
};

// Messages between neighbouring stages of one replica. Sends never block.
class Link {
 public:
  virtual ~Link() = default;
  virtual void send(Direction direction, int64_t microbatch, int to, std::vector<std::span<const float>> payload) = 0;
  // True once the message is in `into`; false if it has not arrived yet (the caller tries later).
  virtual bool try_receive(Direction direction, int64_t microbatch, int from, std::vector<std::span<float>> into) = 0;
};

// Averaging of a stage's gradient over its replicas (and, sharded, the gather of updated weights).
class Averager {
 public:
  virtual ~Averager() = default;
  // Sums `gradient` over the stage's replicas into itself (sharded: only this replica's shard of
  // it); the caller leaves the buffer alone until try_finish returns true.
  virtual void start(int64_t update, int part, std::span<float> gradient) = 0;
  // True once the sum is in the buffer given to start.
  virtual bool try_finish(int64_t update, int part) = 0;
  // The elements of a part of `size` this replica updates: all of them unless sharded.
  virtual std::pair<size_t, size_t> shard(size_t size) const = 0;
  virtual void start_gather(int64_t update, int part, std::span<const float> weights) = 0;
  virtual bool try_finish_gather(int64_t update, int part, std::span<float> weights) = 0;
};

class Executor {
 public:
  Executor(const Program& program, StageWorker& worker, Link& link, Averager& averager, Timeline* timeline = nullptr);
  // Called after every instruction (a distributed run polls its MPI requests here).
  void set_progress_hook(std::function<void()> hook) { progress_hook_ = std::move(hook); }

  // Runs instructions until the program ends or one must wait for a message or an average;
  // returns whether any ran.
  bool run_until_blocked();
  bool done() const { return next_ >= program_.instructions.size(); }
  const Program& program() const { return program_; }
  std::string waiting_for() const;  // "rank 3 waits at instruction 12 (recv-grad 5 <r4)"
  const Instruction* next_instruction() const {
    return done() ? nullptr : &program_.instructions[next_];
  }

 private:
  bool execute(const Instruction& instruction);  // false: must wait
  void check_version(int64_t used, int64_t expected);

  const Program& program_;
  StageWorker& worker_;
  Link& link_;
  Averager& averager_;
  Timeline* timeline_;
  size_t next_ = 0;
  std::vector<std::pair<int64_t, int>> averaged_;  // (update, part) whose average arrived
  std::chrono::steady_clock::time_point origin_;
  std::function<void()> progress_hook_;
};

// Runs executors of all ranks in one thread, each as far as it can, until all finish; throws
// naming every waiting rank if none can move (the programs deadlock).
void run_in_turn(std::vector<Executor>& executors);

}  // namespace baton::schedulers
