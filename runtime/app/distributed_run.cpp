// Implementation of DistributedRun.
#include "runtime/app/distributed_run.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "runtime/app/trainer.hpp"
#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"
#include "schedulers/executor.hpp"

namespace baton {

using namespace schedulers;
using Clock = std::chrono::steady_clock;

namespace {

// Evaluation messages use microbatch numbers past any training program's.
constexpr int64_t kEvaluationMicrobatches = int64_t(1) << 40;

// Where this node's ranks and their threads outnumber its cores, a rank waiting for a message or
// an allreduce sleeps, so that the ranks computing get the cores (collective: every rank asks).
comm::Waiting waiting_on_this_node() {
  const int64_t threads = int64_t(ranks_on_this_node()) * omp_threads();
  return threads > int64_t(std::thread::hardware_concurrency()) ? comm::Waiting::sleep : comm::Waiting::spin;
}

std::vector<size_t> sizes_of(const std::vector<std::span<float>>& tensors) {
  std::vector<size_t> sizes;
  for (const auto& t : tensors) sizes.push_back(t.size());
  return sizes;
}

std::vector<size_t> sizes_of(const std::vector<std::span<const float>>& tensors) {
  std::vector<size_t> sizes;
  for (const auto& t : tensors) sizes.push_back(t.size());
  return sizes;
}

}  // namespace

DistributedRun::DistributedRun(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& parallel,
                               const WorkerOptions& common, MinibatchSource* train_data, comm::Topology& topology,
                               comm::Progress progress, double stall_timeout_seconds)
    : parallel_(parallel),
      plan_(plan),
      topology_(topology),
      engine_(comm::Engine::create(progress, waiting_on_this_node())),
      stall_timeout_(stall_timeout_seconds) {
  const int stage = topology.stage();
  const bool reads_data = stage == 0 || stage == parallel.stages - 1;
  auto [first, last] = plan.stages[size_t(stage)];
  worker_ = std::make_unique<NetworkWorker>(model, first, last,
                                            worker_options_for(topology.rank(), plan, parallel, common),
                                            reads_data ? train_data : nullptr);
  if (progress == comm::Progress::poll) worker_->network().set_progress_hook([engine = engine_.get()] { engine->progress(); });
  comm::BoundarySizes sizes{sizes_of(worker_->incoming(Direction::activation, 0)),
                            sizes_of(worker_->outgoing(Direction::activation, 0))};
  link_ = std::make_unique<comm::MpiLink>(*engine_, topology, sizes);
  averager_ = std::make_unique<comm::MpiAverager>(*engine_, topology, parallel.dp == "sharded");
  collectives_ = comm::mpi_collectives(topology.world());
}

SegmentResult DistributedRun::train_segment(const Segment& segment, Timeline* timeline) {
  EpochSchedule schedule = schedule_epoch(plan_, parallel_, segment);
  const Program& program = schedule.programs[size_t(topology_.rank())];
  worker_->begin_segment(segment, schedule.staleness[size_t(program.stage)]);
  link_->begin_program(program);
  Timeline local;
  MPI_Barrier(topology_.world());  // the executors' clocks start together
  Executor executor(program, *worker_, *link_, *averager_, timeline ? &local : nullptr);
  executor.set_progress_hook([engine = engine_.get()] { engine->progress(); });
  if (timeline) {
    local.name_row(program.rank, "rank " + std::to_string(program.rank) + ": stage " + std::to_string(program.stage) +
                                     ", replica " + std::to_string(program.replica));
  }
  run(executor);
  link_->finish();
  if (timeline) gather_timeline(local, timeline);
  return gather_updates(segment.updates);
}

// Runs the executor, idling in the engine whenever it waits (the communication thread's engine
// sleeps until an operation completes); past the stall timeout it says once who is late.
void DistributedRun::run(Executor& executor) {
  auto last_progress = Clock::now();
  bool reported = false;
  while (!executor.done()) {
    const uint64_t seen = engine_->completions();
    if (executor.run_until_blocked()) {
      last_progress = Clock::now();
      reported = false;
      continue;
    }
    engine_->idle(seen);
    const double waited = std::chrono::duration<double>(Clock::now() - last_progress).count();
    if (stall_timeout_ > 0 && waited > stall_timeout_ && !reported) {
      stalled(executor, waited);
      reported = true;
    }
  }
}

void DistributedRun::stalled(const Executor& executor, double seconds) {
  std::string late = "the other replicas of stage " + std::to_string(topology_.stage());
  if (const Instruction* waiting = executor.next_instruction()) {
    std::visit(Overloaded{
                   [&](const RecvActivation& i) { late = "rank " + std::to_string(i.from); },
                   [&](const RecvGrad& i) { late = "rank " + std::to_string(i.from); },
                   [](const auto&) {},
               },
               *waiting);
  }
  std::fprintf(stderr, "baton (rank %d): nothing has completed for %.0f s: %s; %s is late\n", topology_.rank(), seconds,
               executor.waiting_for().c_str(), late.c_str());
  std::fflush(stderr);
}

EpochTotals DistributedRun::reduce(const EpochTotals& mine) const {
  double local[3] = {mine.loss, double(mine.hits), double(mine.images)}, sum[3] = {0, 0, 0};
  MPI_Reduce(local, sum, 3, MPI_DOUBLE, MPI_SUM, 0, topology_.world());
  return EpochTotals{sum[0], int64_t(sum[1]), int64_t(sum[2])};
}

// Rank 0 gets the totals and, per update, the loss sums of the last stage's ranks added in replica
// order (as the one-process run adds them) and replica 0's last-stage times.
SegmentResult DistributedRun::gather_updates(int64_t updates) const {
  const bool last_stage = topology_.stage() == parallel_.stages - 1;
  const size_t count = size_t(updates);
  std::vector<double> mine(2 * count, 0.0);
  if (last_stage) {
    std::copy(worker_->update_loss_sums().begin(), worker_->update_loss_sums().end(), mine.begin());
    std::copy(worker_->update_seconds().begin(), worker_->update_seconds().end(), mine.begin() + long(count));
  }
  const int ranks = parallel_.stages * parallel_.replicas;
  std::vector<double> all(topology_.rank() == 0 ? size_t(ranks) * mine.size() : 0);
  BATON_CHECK_MPI(MPI_Gather(mine.data(), int(mine.size()), MPI_DOUBLE, all.data(), int(mine.size()), MPI_DOUBLE, 0,
                             topology_.world()));
  EpochTotals totals;
  if (last_stage) totals.add(*worker_);
  SegmentResult result;
  result.totals = reduce(totals);
  if (topology_.rank() != 0) return result;
  result.update_loss_sums.assign(count, 0.0);
  for (int replica = 0; replica < parallel_.replicas; ++replica) {
    const double* sums = all.data() + size_t(topology_.world_rank_of(parallel_.stages - 1, replica)) * mine.size();
    for (size_t u = 0; u < count; ++u) result.update_loss_sums[u] += sums[u];
  }
  const double* seconds = all.data() + size_t(topology_.world_rank_of(parallel_.stages - 1, 0)) * mine.size() + count;
  result.update_seconds.assign(seconds, seconds + count);
  return result;
}

void DistributedRun::gather_timeline(const Timeline& local, Timeline* into) const {
  std::vector<std::string> each = collectives_->gather(local.serialize());
  for (const std::string& serialized : each) into->merge(serialized);
}

// Sharded averaging leaves each replica the momentum of its own shard of every bucket: an in-place
// all-gather over the stage's replicas makes it whole everywhere.
void DistributedRun::gather_momentum_shards() {
  if (parallel_.dp != "sharded" || parallel_.replicas == 1) return;
  for (int part = 0; part < worker_->parts(); ++part) {
    std::span<float> momentum = worker_->momentum(part);
    engine_->wait(engine_->allgather(momentum.data(), comm::block_counts(momentum.size(), parallel_.replicas),
                                     topology_.stage_comm()));
  }
}

EpochTotals DistributedRun::evaluate(BatchLoader& loader) {
  EpochTotals totals;
  const int stage = topology_.stage(), stages = parallel_.stages, replica = topology_.replica();
  if (replica == 0) {
    layers::Network& net = worker_->network();
    const bool first = stage == 0, last = stage == stages - 1;
    if (first || last) loader.start_epoch(0);
    Batch batch;
    for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
      const int64_t id = kEvaluationMicrobatches + b;
      if (first || last) BATON_CHECK(loader.next(batch), "the evaluation data ended early");
      if (first) std::copy(batch.images.begin(), batch.images.end(), net.input(0, 0).data());
      if (!first) {
        engine_->idle_until([&] {
          return link_->try_receive(Direction::activation, id, topology_.world_rank_of(stage - 1, 0),
                                    worker_->incoming(Direction::activation, 0));
        });
      }
      if (last) std::copy(batch.labels.begin(), batch.labels.end(), net.labels(0));
      net.forward(0, layers::Phase::eval, 0, worker_->current_weights());
      if (!last) {
        link_->send(Direction::activation, id, topology_.world_rank_of(stage + 1, 0),
                    worker_->outgoing(Direction::activation, 0));
      } else {
        totals.loss += net.loss_sum(0, batch.count);
        totals.hits += net.correct(0, batch.count);
        totals.images += batch.count;
      }
    }
    link_->finish();
  }
  return reduce(totals);
}

double DistributedRun::average_seconds(int times) {
  std::span<float> gradient = worker_->hand_over_gradient(0);  // zeros: sums of them stay zero
  std::vector<double> seconds;
  for (int i = 0; i < times; ++i) {
    MPI_Barrier(topology_.world());
    auto start = Clock::now();
    averager_->start(i, 0, gradient);
    engine_->idle_until([&] { return averager_->try_finish(i, 0); });
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + long(seconds.size() / 2), seconds.end());
  return seconds[seconds.size() / 2];
}

std::vector<StageInfo> DistributedRun::stage_info() {
  const layers::Network& net = worker_->network();
  int64_t mine[2] = {net.param_count(), int64_t(net.activation_bytes())};
  int ranks = 0;
  MPI_Comm_size(topology_.world(), &ranks);
  std::vector<int64_t> all(static_cast<size_t>(2 * ranks));
  MPI_Gather(mine, 2, MPI_INT64_T, all.data(), 2, MPI_INT64_T, 0, topology_.world());
  std::vector<StageInfo> info;
  for (int s = 0; s < parallel_.stages; ++s) info.push_back({all[size_t(2 * s)], all[size_t(2 * s + 1)]});  // replica 0
  return info;
}

}  // namespace baton
