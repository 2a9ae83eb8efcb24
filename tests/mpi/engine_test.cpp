// The progress engines under real MPI ranks: a compute thread waiting on the communication thread's
// engine sleeps when asked to (where ranks outnumber cores, a waiting rank leaves its core to the
// ranks that compute, as the simulator's core sharing assumes), and every engine delivers.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <ctime>
#include <thread>
#include <vector>

#include "comm/engine.hpp"

namespace baton::comm {
namespace {

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

int rank_and_size(int* size) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  return rank;
}

constexpr auto kSenderDelay = std::chrono::milliseconds(300);

// Rank 1 sends rank 0 a message after kSenderDelay; rank 0 waits for it with `wait_for`, which is
// given the engine and the receive's handle. Returns rank 0's thread CPU seconds spent waiting
// (0 on other ranks), after checking the message arrived whole.
template <class WaitFor>
double cpu_seconds_waiting(Progress progress, Waiting waiting, WaitFor wait_for) {
  int size = 1;
  const int rank = rank_and_size(&size);
  std::unique_ptr<Engine> engine = Engine::create(progress, waiting);
  std::vector<float> message(1000, rank == 1 ? 7.0f : 0.0f);
  double cpu = 0;
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    const Engine::Handle handle = engine->receive(message.data(), int(message.size()), 1, 5, MPI_COMM_WORLD);
    const double start = thread_cpu_seconds();
    wait_for(*engine, handle);
    cpu = thread_cpu_seconds() - start;
    EXPECT_EQ(message.front(), 7.0f);
    EXPECT_EQ(message.back(), 7.0f);
  } else if (rank == 1) {
    std::this_thread::sleep_for(kSenderDelay);
    engine->wait(engine->send(message.data(), int(message.size()), 0, 5, MPI_COMM_WORLD));
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return cpu;
}

void wait_on_handle(Engine& engine, Engine::Handle handle) { engine.wait(handle); }

// The executor's way: look, and idle until the next completion if nothing was done.
void idle_until_done(Engine& engine, Engine::Handle handle) {
  engine.idle_until([&] { return engine.done(handle); });
}

TEST(Engine, AThreadWaitingOnTheCommunicationThreadSleepsWhenAskedTo) {
  const double waited = std::chrono::duration<double>(kSenderDelay).count();
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (auto [name, wait_for] : {std::pair{"wait", &wait_on_handle}, {"idle", &idle_until_done}}) {
    const double sleeping = cpu_seconds_waiting(Progress::thread, Waiting::sleep, wait_for);
    const double spinning = cpu_seconds_waiting(Progress::thread, Waiting::spin, wait_for);
    if (rank != 0) continue;
    std::printf("  %s: %.1f ms of CPU sleeping, %.1f ms spinning, in about %.0f ms of waiting\n", name,
                1e3 * sleeping, 1e3 * spinning, 1e3 * waited);
    EXPECT_LT(sleeping, 0.1 * waited) << name;  // spinning takes what the scheduler gives it
  }
}

TEST(Engine, ThePollingEngineDeliversWhileItsCallerPolls) {
  // It makes progress only when called, so its caller spins; what matters is the message.
  cpu_seconds_waiting(Progress::poll, Waiting::spin, &idle_until_done);
  cpu_seconds_waiting(Progress::poll, Waiting::spin, &wait_on_handle);
}

}  // namespace
}  // namespace baton::comm
