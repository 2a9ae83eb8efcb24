// Implementation of training, benchmarking and the zoo listing on one rank.
#include "runtime/app/trainer.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>

#include "layers/network.hpp"
#include "layers/partition.hpp"
#include "layers/zoo.hpp"
#include "runtime/data/data_loader.hpp"
#include "runtime/data/dataset.hpp"
#include "runtime/base/error.hpp"
#include "runtime/app/metrics.hpp"
#include <mpi.h>

#include "comm/topology.hpp"
#include "runtime/app/distributed_run.hpp"
#include "runtime/app/local_run.hpp"
#include "runtime/app/optimizer.hpp"

namespace baton {
namespace {

using Clock = std::chrono::steady_clock;
using layers::Network;
using layers::Phase;

const char* kDebianFashionMnist = "/usr/share/datasets/fashion-mnist";

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

layers::Backend parse_backend(const std::string& name) {
  if (name == "cpu") return layers::Backend::cpu;
  if (name == "reference") return layers::Backend::reference;
  BATON_FAIL("unknown backend '" << name << "'; choose cpu or reference");
}

DataOptions data_options(const TrainConfig& c, const layers::ZooEntry& model) {
  DataOptions o;
  o.name = c.dataset;
  o.dir = c.data_dir.empty() && c.dataset == "fashion-mnist" ? kDebianFashionMnist : c.data_dir;
  o.synthetic_dims = c.synthetic_dims.empty() ? model.natural_input : c.synthetic_dims;
  o.synthetic_classes = c.synthetic_classes > 0 ? c.synthetic_classes : model.natural_classes;
  o.synthetic_train = c.synthetic_train;
  o.synthetic_test = c.synthetic_test;
  o.seed = c.seed;
  return o;
}

layers::ModelSpec model_for(const std::string& name, const Dataset& data, const std::string& dataset_name) {
  layers::zoo_entry(name);  // an unknown name fails here, before shapes are looked at
  try {
    return layers::build_model(name, data.image_dims, data.classes);
  } catch (const Error& e) {
    throw e.with_context("", "; choose a model made for " + dataset_name +
                                 " (baton models lists each model's input) or a data set with larger images");
  }
}

LrSchedule schedule_for(const TrainConfig& c, int64_t steps_per_epoch) {
  LrSchedule s;
  s.base = c.lr;
  s.shape = parse_lr_shape(c.lr_schedule);
  s.warmup_steps = int64_t(c.warmup_epochs * double(steps_per_epoch));
  s.total_steps = c.epochs * steps_per_epoch;
  for (int64_t epoch : c.lr_milestones) s.milestones.push_back(epoch * steps_per_epoch);
  s.gamma = c.lr_gamma;
  return s;
}

void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

// "2.26 MFLOP", "156 FLOP".
std::string with_unit(double value, const std::string& unit) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  if (value >= 1e9) out << value / 1e9 << " G" << unit;
  else if (value >= 1e6) out << value / 1e6 << " M" << unit;
  else if (value >= 1e3) out << value / 1e3 << " k" << unit;
  else out << std::setprecision(0) << value << " " << unit;
  return out.str();
}

}  // namespace

namespace {

// Per stage: its layers, parameters, forward weight delay and memory, for the start line and the
// metrics file's config event. Weight bytes count weights, gradient, averaged gradient and
// momentum (4 copies), plus the stashes PipeDream keeps.
nlohmann::json describe_stages(const layers::ModelSpec& model, const RunPlan& plan, const std::vector<StageInfo>& info,
                               const ParallelConfig& p) {
  auto layer_names = [&](int first, int last) {
    return first + 1 == last ? model.nodes[size_t(first)].name
                             : model.nodes[size_t(first)].name + " .. " + model.nodes[size_t(last - 1)].name;
  };
  nlohmann::json stages = nlohmann::json::array();
  for (int s = 0; s < p.stages; ++s) {
    const StageInfo& stage = info[size_t(s)];
    auto [first, last] = plan.stages[size_t(s)];
    const int64_t stashes = p.pipeline == "pipedream" ? p.stages - 1 - s : 0;
    stages.push_back({{"stage", s},
                      {"layers", layer_names(first, last)},
                      {"layer_count", last - first},
                      {"params", stage.params},
                      {"forward_delay", plan.forward_delays[size_t(s)]},
                      {"activation_bytes", stage.activation_bytes},
                      {"weight_bytes", stage.params * int64_t(sizeof(float)) * (4 + stashes)}});
  }
  return stages;
}

void print_stages(const nlohmann::json& stages) {
  for (const auto& s : stages) {
    std::printf("  stage %d: %s (%d layers), %s, forward delay %lld, activations %.1f MB, weights %.1f MB\n",
                s["stage"].get<int>(), s["layers"].get<std::string>().c_str(), s["layer_count"].get<int>(),
                (std::to_string(s["params"].get<int64_t>()) + " params").c_str(),
                static_cast<long long>(s["forward_delay"].get<int64_t>()),
                s["activation_bytes"].get<double>() / 1e6, s["weight_bytes"].get<double>() / 1e6);
  }
}

void print_start(const TrainConfig& c, const layers::ModelSpec& model, const DataSplit& data, const RunPlan& plan,
                 const nlohmann::json& stages) {
  const ParallelConfig& p = c.parallel;
  std::printf("baton: training %s (%s, %s per image) on %s: %lld train / %lld test images, batch %lld, "
              "%d threads, %s kernels\n",
              c.model.c_str(), (std::to_string(layers::count_params(model)) + " params").c_str(),
              with_unit(layers::training_flops_per_image(model), "FLOP").c_str(), c.dataset.c_str(),
              static_cast<long long>(data.train.size()), static_cast<long long>(data.test.size()),
              static_cast<long long>(c.batch_size), omp_get_max_threads(), c.backend.c_str());
  if (p.stages * p.replicas > 1) {
    std::printf("  %d stage(s) x %d replica(s) %s, pipeline %s, %d microbatch(es) of %lld images, %s averaging%s\n",
                p.stages, p.replicas, p.emulate ? "in this process" : "over MPI", p.pipeline.c_str(), p.microbatches,
                static_cast<long long>(plan.microbatch), p.dp.c_str(), p.split_backward ? ", split backward" : "");
    print_stages(stages);
  }
  std::fflush(stdout);
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// Where the configuration's ranks live: all in this process (--emulate, or a single rank), or one
// per MPI process. Checked before any communication, identically on every rank.
bool runs_here(const ParallelConfig& p) {
  const int ranks = p.stages * p.replicas, world = world_size();
  if (p.emulate) {
    BATON_CHECK(world == 1, "--emulate runs all " << ranks << " ranks in one process; start it without mpirun "
                                                  << "(this job has " << world << " processes)");
    return true;
  }
  BATON_CHECK(!(world == 1 && ranks > 1), ranks << " ranks (" << p.stages << " stage(s) x " << p.replicas
                                                << " replica(s)) need mpirun -n " << ranks
                                                << ", or --emulate to run them all in this process");
  return world == 1;
}

// What stages are balanced on: FLOPs, or each layer's passes timed here (--partition-by time) and
// averaged over the ranks, so that every rank computes the same partition.
std::vector<layers::NodeCost> balancing_costs(const layers::ModelSpec& model, const ParallelConfig& p,
                                              const layers::NetworkOptions& network) {
  if (p.partition_by != "time" || p.stages == 1 || !p.partition.empty()) return layers::node_costs(model);
  std::vector<layers::NodeCost> costs = layers::measured_costs(model, network, 2);
  std::vector<double> work;
  for (const layers::NodeCost& c : costs) work.push_back(c.work);
  MPI_Allreduce(MPI_IN_PLACE, work.data(), int(work.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  for (size_t i = 0; i < costs.size(); ++i) costs[i].work = work[i] / world_size();
  return costs;
}

// The run of this configuration; `topology` keeps the MPI grid of a distributed run alive.
std::unique_ptr<Run> start_run(const layers::ModelSpec& model, const RunPlan& plan, const ParallelConfig& p,
                               const WorkerOptions& common, MinibatchSource* source,
                               std::unique_ptr<comm::Topology>& topology) {
  if (runs_here(p)) return std::make_unique<LocalRun>(model, plan, p, common, source);
  topology = std::make_unique<comm::Topology>(p.stages, p.replicas);
  set_error_rank(topology->rank());
  return std::make_unique<DistributedRun>(model, plan, p, common, source, *topology, comm::parse_progress(p.progress),
                                          p.stall_timeout);
}

}  // namespace

std::vector<EpochStats> run_training(const TrainConfig& c) {
  set_threads(c.threads);
  const ParallelConfig& p = c.parallel;
  const bool one_process = runs_here(p);
  const layers::ZooEntry& entry = layers::zoo_entry(c.model);
  DataSplit data = load_data(data_options(c, entry));
  layers::ModelSpec model = model_for(c.model, data.train, c.dataset);
  const layers::NetworkOptions network{parse_backend(c.backend),
                                       std::max<int64_t>(1, c.batch_size / (p.replicas * p.microbatches)), 1, c.seed};
  RunPlan plan = plan_run(model, p, c.batch_size, c.epochs, balancing_costs(model, p, network));
  Normalization norm = channel_statistics(data.train);
  BatchLoader train_loader(data.train, norm, c.batch_size, true, true, c.seed);
  BatchLoader test_loader(data.test, norm, plan.microbatch, false, false, c.seed);
  const int64_t steps = train_loader.batches_per_epoch();
  // Every microbatch is read by the first stage (images) and the last (labels); one process reads
  // for all replicas, an MPI rank only for its own.
  const int readers = (one_process ? p.replicas : 1) * p.microbatches * (one_process && p.stages > 1 ? 2 : 1);
  LoaderSource source(train_loader, readers);
  WorkerOptions common;
  common.network = network;
  common.sgd = SgdOptions{c.momentum, c.weight_decay, c.nesterov};
  common.schedule = schedule_for(c, steps);
  std::unique_ptr<comm::Topology> topology;
  std::unique_ptr<Run> run = start_run(model, plan, p, common, &source, topology);
  const bool reports = run->reports();
  MetricsLog metrics(reports ? c.metrics : "");
  nlohmann::json stages = describe_stages(model, plan, run->stage_info(), p);
  if (reports) {
    print_start(c, model, data, plan, stages);
    metrics.write({{"event", "config"}, {"model", c.model}, {"dataset", c.dataset},
                   {"params", layers::count_params(model)}, {"batch_size", c.batch_size},
                   {"microbatch", plan.microbatch}, {"threads", omp_get_max_threads()}, {"epochs", c.epochs},
                   {"replicas", p.replicas}, {"pipeline", p.pipeline}, {"microbatches", p.microbatches},
                   {"dp", p.dp}, {"split_backward", p.split_backward}, {"staleness", p.staleness},
                   {"processes", world_size()}, {"progress", p.progress}, {"stages", stages}});
  }

  std::vector<EpochStats> history;
  for (int64_t epoch = 1; epoch <= c.epochs; ++epoch) {
    ProgressBar bar("epoch " + std::to_string(epoch), steps, reports && stdout_is_terminal() && world_size() == 1);
    source.start_epoch(epoch, [&](int64_t done) { bar.update(done, ""); });
    Timeline timeline;
    const bool traced = epoch == 1 && !p.timeline.empty();
    auto start = Clock::now();
    EpochTotals train = run->train_epoch(epoch, c.epochs, steps, (epoch - 1) * steps, traced ? &timeline : nullptr);
    EpochStats stats;
    stats.epoch = epoch;
    stats.seconds = seconds_since(start);
    stats.images_per_sec = double(train.images) / stats.seconds;
    if (traced && reports) timeline.write(p.timeline);
    EpochTotals test = run->evaluate(test_loader);
    bar.clear();
    stats.train_loss = train.mean_loss();
    stats.train_accuracy = train.accuracy();
    stats.test_loss = test.mean_loss();
    stats.test_accuracy = test.accuracy();
    history.push_back(stats);
    if (!reports) continue;
    std::printf("epoch %lld/%lld  loss %.4f  train %.2f%%  test %.2f%%  %.0f img/s  %.1f s\n",
                static_cast<long long>(epoch), static_cast<long long>(c.epochs), stats.train_loss,
                100 * stats.train_accuracy, 100 * stats.test_accuracy, stats.images_per_sec, stats.seconds);
    std::fflush(stdout);
    metrics.write({{"event", "epoch"}, {"epoch", epoch}, {"train_loss", stats.train_loss},
                   {"train_accuracy", stats.train_accuracy}, {"test_loss", stats.test_loss},
                   {"test_accuracy", stats.test_accuracy}, {"images_per_sec", stats.images_per_sec},
                   {"seconds", stats.seconds}, {"lr", learning_rate(common.schedule, epoch * steps - 1)}});
  }
  return history;
}

namespace {

// The same synthetic minibatch for every update: a benchmark times compute, not data.
class RepeatedSource final : public MinibatchSource {
 public:
  explicit RepeatedSource(Batch batch) : batch_(std::move(batch)) {}
  const Batch& minibatch(int64_t) override { return batch_; }
  void done_with(int64_t) override {}

 private:
  Batch batch_;
};

Batch synthetic_batch(const layers::ZooEntry& entry, int64_t batch_size, uint64_t seed) {
  Dataset data = make_synthetic(entry.natural_input, entry.natural_classes, batch_size, seed, "synthetic");
  Batch batch;
  batch.images = std::move(data.images);
  batch.labels = std::move(data.labels);
  batch.count = batch_size;
  return batch;
}

}  // namespace

namespace {

// Median over `repeats` programs of `iterations` updates of the time per update; all processes
// start each timed program together.
double median_step_ms(Run& run, const BenchConfig& c) {
  if (c.warmup > 0) run.train_epoch(1, 1, c.warmup, 0, nullptr);
  std::vector<double> step_ms;
  for (int64_t r = 0; r < c.repeats; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    auto start = Clock::now();
    run.train_epoch(1, 1, c.iterations, 0, nullptr);
    MPI_Barrier(MPI_COMM_WORLD);
    step_ms.push_back(1e3 * seconds_since(start) / double(c.iterations));
  }
  std::nth_element(step_ms.begin(), step_ms.begin() + long(step_ms.size() / 2), step_ms.end());
  return step_ms[step_ms.size() / 2];
}

}  // namespace

nlohmann::json run_bench(const BenchConfig& c) {
  set_threads(c.threads);
  const ParallelConfig& p = c.parallel;
  const layers::ZooEntry& entry = layers::zoo_entry(c.model);
  layers::ModelSpec model = layers::build_model(c.model, entry.natural_input, entry.natural_classes);
  const layers::NetworkOptions network{parse_backend(c.backend),
                                       std::max<int64_t>(1, c.batch_size / (p.replicas * p.microbatches)), 1, c.seed};
  RunPlan plan = plan_run(model, p, c.batch_size, 1, balancing_costs(model, p, network));
  RepeatedSource source(synthetic_batch(entry, c.batch_size, c.seed));
  WorkerOptions common;
  common.network = network;
  common.sgd = SgdOptions{0.9f, 5e-4f, false};
  common.schedule.base = 1e-3f;
  nlohmann::json result{{"model", c.model}, {"batch_size", c.batch_size}, {"threads", omp_get_max_threads()},
                        {"processes", world_size()}, {"stages", p.stages}, {"replicas", p.replicas},
                        {"pipeline", p.pipeline}, {"microbatches", p.microbatches}, {"dp", p.dp},
                        {"progress", p.progress}, {"measure", c.measure}};
  const bool root = world_size() == 1 || [] {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank == 0;
  }();
  if (c.measure == "compute") {
    // Each process trains its replica's share alone, all at once: the compute of a data-parallel
    // step under the same contention for memory, without any averaging.
    BATON_CHECK(p.stages == 1 && world_size() == p.replicas,
                "--measure compute times data-parallel replicas without averaging; use --stages 1 and mpirun -n "
                    << p.replicas);
    ParallelConfig alone = p;
    alone.replicas = 1;
    alone.emulate = true;
    RunPlan own = plan_run(model, alone, plan.microbatch, 1, layers::node_costs(model));
    LocalRun run(model, own, alone, common, &source);
    result["median_step_ms"] = median_step_ms(run, c);
    return root ? result : nlohmann::json();
  }
  std::unique_ptr<comm::Topology> topology;
  std::unique_ptr<Run> run = start_run(model, plan, p, common, &source, topology);
  if (c.measure == "comm") {
    auto* distributed = dynamic_cast<DistributedRun*>(run.get());
    BATON_CHECK(distributed != nullptr && p.replicas > 1,
                "--measure comm times averaging over replicas; start it with mpirun and --replicas 2 or more");
    result["median_average_ms"] = 1e3 * distributed->average_seconds(int(c.iterations));
    result["gradient_floats"] = distributed->worker().gradient(0).size();
    return root ? result : nlohmann::json();
  }
  const double median = median_step_ms(*run, c);
  const double flops = layers::training_flops_per_image(model) * double(c.batch_size);
  result["median_step_ms"] = median;
  result["images_per_sec"] = double(c.batch_size) / (median / 1e3);
  result["gflops"] = flops / (median / 1e3) / 1e9;
  return root ? result : nlohmann::json();
}

void print_model_zoo(std::ostream& out) {
  out << std::left << std::setw(11) << "model" << std::right << std::setw(13) << "params" << std::setw(18)
      << "train MFLOP/img" << "  " << std::left << std::setw(12) << "input" << "description\n";
  for (const layers::ZooEntry& entry : layers::zoo()) {
    layers::ModelSpec model = layers::build_model(entry.name, entry.natural_input, entry.natural_classes);
    out << std::left << std::setw(11) << entry.name << std::right << std::setw(13) << layers::count_params(model)
        << std::setw(18) << std::fixed << std::setprecision(1) << layers::training_flops_per_image(model) / 1e6 << "  "
        << std::left << std::setw(12) << to_string(entry.natural_input) << entry.description << "\n";
  }
}

}  // namespace baton
