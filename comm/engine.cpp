// The two progress engines. Poll: the caller's thread issues MPI calls and tests outstanding
// requests whenever progress() is called. Thread: one communication thread issues every MPI call
// from a queue and tests its requests, sleeping briefly between tests so it does not take a core;
// a compute thread waiting for it spins, or sleeps until an operation completes.
#include "comm/engine.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "comm/topology.hpp"
#include "runtime/base/error.hpp"

namespace baton::comm {
namespace {

// One non-blocking operation, as data: it is started (possibly on another thread) after it was
// moved into the engine's tables, so it owns its count and offset arrays.
struct Operation {
  enum class Kind { send, receive, allreduce, reduce_scatter, allgather } kind;
  float* data = nullptr;
  float* shard = nullptr;
  int count = 0, peer = 0, tag = 0;
  MPI_Comm comm = MPI_COMM_NULL;
  std::vector<int> counts, offsets;

  void start(MPI_Request* request) {
    switch (kind) {
      case Kind::send:
        BATON_CHECK_MPI(MPI_Isend(data, count, MPI_FLOAT, peer, tag, comm, request));
        break;
      case Kind::receive:
        BATON_CHECK_MPI(MPI_Irecv(data, count, MPI_FLOAT, peer, tag, comm, request));
        break;
      case Kind::allreduce:
        BATON_CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, data, count, MPI_FLOAT, MPI_SUM, comm, request));
        break;
      case Kind::reduce_scatter:
        BATON_CHECK_MPI(MPI_Ireduce_scatter(data, shard, counts.data(), MPI_FLOAT, MPI_SUM, comm, request));
        break;
      case Kind::allgather:
        BATON_CHECK_MPI(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), offsets.data(),
                                        MPI_FLOAT, comm, request));
        break;
    }
  }
};

std::vector<int> offsets_of(const std::vector<int>& counts) {
  std::vector<int> offsets(counts.size(), 0);
  std::partial_sum(counts.begin(), counts.end() - 1, offsets.begin() + 1);
  return offsets;
}

// The engine's bookkeeping shared by both: operations by handle with their requests.
class EngineBase : public Engine {
 public:
  using Kind = Operation::Kind;
  Handle send(const float* data, int count, int destination, int tag, MPI_Comm comm) override {
    return submit(Operation{Kind::send, const_cast<float*>(data), nullptr, count, destination, tag, comm, {}, {}});
  }
  Handle receive(float* data, int count, int source, int tag, MPI_Comm comm) override {
    return submit(Operation{Kind::receive, data, nullptr, count, source, tag, comm, {}, {}});
  }
  Handle allreduce_sum(float* data, int count, MPI_Comm comm) override {
    return submit(Operation{Kind::allreduce, data, nullptr, count, 0, 0, comm, {}, {}});
  }
  Handle reduce_scatter_sum(const float* data, float* shard, std::vector<int> counts, MPI_Comm comm) override {
    return submit(Operation{Kind::reduce_scatter, const_cast<float*>(data), shard, 0, 0, 0, comm, std::move(counts), {}});
  }
  Handle allgather(float* data, std::vector<int> counts, MPI_Comm comm) override {
    std::vector<int> offsets = offsets_of(counts);
    return submit(Operation{Kind::allgather, data, nullptr, 0, 0, 0, comm, std::move(counts), std::move(offsets)});
  }

 protected:
  virtual Handle submit(Operation op) = 0;
};

class PollingEngine final : public EngineBase {
 public:
  bool done(Handle handle) override {
    auto it = active_.find(handle);
    BATON_CHECK(it != active_.end(), "no MPI operation " << handle << " is outstanding");
    int complete = 0;
    BATON_CHECK_MPI(MPI_Test(&it->second.request, &complete, MPI_STATUS_IGNORE));
    if (complete) active_.erase(it);
    return complete != 0;
  }

  void progress() override {
    for (auto& [handle, entry] : active_) {
      int complete = 0;
      if (entry.request != MPI_REQUEST_NULL) BATON_CHECK_MPI(MPI_Test(&entry.request, &complete, MPI_STATUS_IGNORE));
    }
  }

 protected:
  Handle submit(Operation op) override {
    const Handle handle = next_++;
    Entry& entry = active_[handle];
    entry.op = std::move(op);
    entry.op.start(&entry.request);
    return handle;
  }

 private:
  struct Entry {
    Operation op;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  Handle next_ = 1;
  std::map<Handle, Entry> active_;  // a completed request stays (as MPI_REQUEST_NULL) until done() sees it
};

constexpr std::chrono::microseconds kTestInterval{int64_t(kThreadTestInterval * 1e6)};

class ThreadEngine final : public EngineBase {
 public:
  explicit ThreadEngine(Waiting waiting) : sleeps_(waiting == Waiting::sleep), thread_([this] { loop(); }) {}

  ~ThreadEngine() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  bool done(Handle handle) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_) std::rethrow_exception(failure_);
    return completed_.erase(handle) > 0;
  }

  void progress() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_) std::rethrow_exception(failure_);
  }

  void wait(Handle handle) override {
    if (!sleeps_) return Engine::wait(handle);
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [&] { return failure_ || completed_.count(handle) > 0; });
    if (failure_) std::rethrow_exception(failure_);
    completed_.erase(handle);
  }

  uint64_t completions() const override { return completions_.load(); }

  void idle(uint64_t seen) override {
    if (!sleeps_) return Engine::idle(seen);
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait_for(lock, kTestInterval, [&] { return failure_ || completions_ != seen; });
    if (failure_) std::rethrow_exception(failure_);
  }

 protected:
  Handle submit(Operation op) override {
    std::lock_guard<std::mutex> lock(mutex_);
    const Handle handle = next_++;
    queue_.emplace_back(handle, std::move(op));
    wake_.notify_one();
    return handle;
  }

 private:
  struct Active {
    Handle handle;
    Operation op;
    MPI_Request request = MPI_REQUEST_NULL;
  };

  // Issues queued operations and tests the active ones until told to stop; an MPI failure is kept
  // and rethrown to the compute thread by its next call.
  void loop() {
    std::list<Active> active;  // a list: started operations must not move (MPI reads their count arrays)
    try {
      for (;;) {
        std::deque<std::pair<Handle, Operation>> fresh;
        {
          std::unique_lock<std::mutex> lock(mutex_);
          wake_.wait(lock, [&] { return stop_ || !queue_.empty() || !active.empty(); });
          if (stop_ && queue_.empty() && active.empty()) return;
          fresh.swap(queue_);
        }
        for (auto& [handle, op] : fresh) {
          active.push_back(Active{handle, std::move(op)});
          active.back().op.start(&active.back().request);
        }
        test_all(active);
        if (!active.empty()) std::this_thread::sleep_for(kTestInterval);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      failure_ = std::current_exception();
    }
    finished_.notify_all();
  }

  void test_all(std::list<Active>& active) {
    for (auto it = active.begin(); it != active.end();) {
      int complete = 0;
      BATON_CHECK_MPI(MPI_Test(&it->request, &complete, MPI_STATUS_IGNORE));
      if (!complete) {
        ++it;
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        completed_.insert(it->handle);
        ++completions_;
      }
      finished_.notify_all();
      it = active.erase(it);
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable wake_;      // the communication thread's: work was queued, or stop
  std::condition_variable finished_;  // the compute thread's: an operation completed, or MPI failed
  std::deque<std::pair<Handle, Operation>> queue_;
  std::set<Handle> completed_;
  std::atomic<uint64_t> completions_ = 0;  // changed under mutex_ (finished_'s predicate reads it)
  const bool sleeps_;
  Handle next_ = 1;
  bool stop_ = false;
  std::exception_ptr failure_;
  std::thread thread_;
};

}  // namespace

Progress parse_progress(const std::string& name) {
  if (name == "poll") return Progress::poll;
  if (name == "thread") return Progress::thread;
  BATON_FAIL("unknown --progress '" << name << "'; choose poll or thread");
}

std::unique_ptr<Engine> Engine::create(Progress progress, Waiting waiting) {
  if (progress == Progress::thread) return std::make_unique<ThreadEngine>(waiting);
  return std::make_unique<PollingEngine>();
}

void Engine::wait(Handle handle) {
  idle_until([&] { return done(handle); });
}

void Engine::idle(uint64_t) {
  progress();
  std::this_thread::yield();
}

std::vector<int> block_counts(size_t size, int parts) {
  std::vector<int> counts;
  for (int i = 0; i < parts; ++i) counts.push_back(int(size * size_t(i + 1) / size_t(parts) - size * size_t(i) / size_t(parts)));
  return counts;
}

}  // namespace baton::comm
