// Every non-blocking MPI operation baton issues goes through one Engine, so who makes progress on
// them is a choice (--progress): a communication thread that owns every MPI call (the default:
// it hid communication better over TCP, README), or the compute thread polling between layers and
// instructions. Open MPI 4.1 makes no progress on its own.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace baton::comm {

enum class Progress { poll, thread };
// How a compute thread waits on the communication thread's engine: spinning (lowest latency where
// its core would idle anyway) or sleeping until an operation completes (where the node's ranks
// and threads outnumber its cores, so a spinning rank would take a core from one that computes).
// The polling engine always spins: it makes progress only while its caller polls.
enum class Waiting { spin, sleep };

// Between two rounds of MPI_Test the communication thread sleeps this many seconds. Measured on
// AlexNet's 115 MB gradient over a 1 Gbit/s link, delayed averaging took 1363 ms a step with no
// sleep (the thread takes a core from the compute), 1173 ms with 100 us and 1136 ms with 1 ms;
// shared memory was as fast with 1 ms as with 20 us (README). The simulator prices it too.
constexpr double kThreadTestInterval = 1e-3;
Progress parse_progress(const std::string& name);  // "poll" or "thread"

class Engine {
 public:
  using Handle = uint64_t;
  static std::unique_ptr<Engine> create(Progress progress, Waiting waiting = Waiting::spin);
  virtual ~Engine() = default;

  // Each starts an operation and returns at once; buffers stay the caller's and must stay valid
  // until done() has returned true for the handle.
  virtual Handle send(const float* data, int count, int destination, int tag, MPI_Comm comm) = 0;
  virtual Handle receive(float* data, int count, int source, int tag, MPI_Comm comm) = 0;
  virtual Handle allreduce_sum(float* data, int count, MPI_Comm comm) = 0;  // in place
  // Sums `data` over the communicator; rank i gets elements [offset_i, offset_i + counts[i]).
  virtual Handle reduce_scatter_sum(const float* data, float* shard, std::vector<int> counts, MPI_Comm comm) = 0;
  // In place: rank i's block [offset_i, offset_i + counts[i]) of `data` goes to every rank.
  virtual Handle allgather(float* data, std::vector<int> counts, MPI_Comm comm) = 0;

  // True once the operation has completed; the handle is then spent.
  virtual bool done(Handle handle) = 0;
  // Polling: tests everything outstanding so MPI moves on. The thread engine needs nothing.
  virtual void progress() = 0;
  // Returns once the operation has completed, spending the handle.
  virtual void wait(Handle handle);

  // For a caller that waits for whichever operation completes next: read completions(), look at
  // the operations, and if none was done call idle() with what was read. A sleeping thread engine
  // returns when another operation completes (or kThreadTestInterval passes); otherwise idle()
  // tests everything (polling) and yields.
  virtual uint64_t completions() const { return 0; }
  virtual void idle(uint64_t seen);
  // That pattern, until `ready()`.
  template <class Ready>
  void idle_until(Ready&& ready) {
    for (uint64_t seen = completions(); !ready(); seen = completions()) idle(seen);
  }
};

// Block boundaries of `size` elements split over `parts` ranks: rank i gets size*i/parts onwards.
std::vector<int> block_counts(size_t size, int parts);

}  // namespace baton::comm
