// Implementation of DistributedRun.
#include "runtime/app/distributed_run.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"
#include "schedulers/executor.hpp"

namespace baton {

using namespace schedulers;
using Clock = std::chrono::steady_clock;

namespace {

// Evaluation messages use microbatch numbers past any training program's.
constexpr int64_t kEvaluationMicrobatches = int64_t(1) << 40;

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
    : parallel_(parallel), plan_(plan), topology_(topology), engine_(comm::Engine::create(progress)),
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
}

EpochTotals DistributedRun::train_epoch(int64_t epoch, int64_t epochs, int64_t steps, int64_t updates_before,
                                        Timeline* timeline) {
  EpochSchedule schedule = schedule_epoch(plan_, parallel_, epoch, epochs, steps);
  const Program& program = schedule.programs[size_t(topology_.rank())];
  worker_->begin_epoch(epoch, updates_before, schedule.lr_scales[size_t(program.stage)]);
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
  EpochTotals mine;
  if (topology_.stage() == parallel_.stages - 1) mine.add(*worker_);
  return reduce(mine);
}

// Runs the executor, polling MPI whenever it waits; past the stall timeout it says once who is late.
void DistributedRun::run(Executor& executor) {
  auto last_progress = Clock::now();
  bool reported = false;
  while (!executor.done()) {
    if (executor.run_until_blocked()) {
      last_progress = Clock::now();
      reported = false;
      continue;
    }
    engine_->progress();
    const double waited = std::chrono::duration<double>(Clock::now() - last_progress).count();
    if (stall_timeout_ > 0 && waited > stall_timeout_ && !reported) {
      stalled(executor, waited);
      reported = true;
    }
    std::this_thread::yield();
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

void DistributedRun::gather_timeline(const Timeline& local, Timeline* into) const {
  const std::string mine = local.serialize();
  int length = int(mine.size()), ranks = 0;
  MPI_Comm_size(topology_.world(), &ranks);
  std::vector<int> lengths(static_cast<size_t>(ranks)), offsets(static_cast<size_t>(ranks), 0);
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, topology_.world());
  for (size_t r = 1; r < lengths.size(); ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
  std::string all(topology_.rank() == 0 ? size_t(offsets.back() + lengths.back()) : 0, ' ');
  MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0, topology_.world());
  if (topology_.rank() != 0) return;
  for (size_t r = 0; r < lengths.size(); ++r) into->merge(all.substr(size_t(offsets[r]), size_t(lengths[r])));
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
        while (!link_->try_receive(Direction::activation, id, topology_.world_rank_of(stage - 1, 0),
                                   worker_->incoming(Direction::activation, 0))) {
          engine_->progress();
          std::this_thread::yield();
        }
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
  std::span<float> gradient = worker_->gradient(0), average = worker_->averaged_gradient(0);
  std::vector<double> seconds;
  for (int i = 0; i < times; ++i) {
    MPI_Barrier(topology_.world());
    auto start = Clock::now();
    averager_->start(i, 0, gradient);
    while (!averager_->try_finish(i, 0, average)) engine_->progress();
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
