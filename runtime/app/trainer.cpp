// Implementation of training, benchmarking and the zoo listing on one rank.
#include "runtime/app/trainer.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <optional>
#include <sstream>

#include "layers/network.hpp"
#include "layers/partition.hpp"
#include "layers/zoo.hpp"
#include "runtime/data/data_loader.hpp"
#include "runtime/data/dataset.hpp"
#include "runtime/base/cuda_devices.hpp"
#include "runtime/base/device_memory.hpp"
#include "runtime/base/error.hpp"
#include "runtime/base/memory.hpp"
#include "runtime/app/metrics.hpp"
#include <mpi.h>

#include "comm/topology.hpp"
#include "runtime/app/distributed_run.hpp"
#include "runtime/app/local_run.hpp"
#include "runtime/app/checkpoint.hpp"
#include "runtime/app/cost_profile.hpp"
#include "runtime/app/optimizer.hpp"
#include "runtime/app/parallel_plan.hpp"
#include "runtime/app/stop_signals.hpp"

namespace baton {
namespace {

using Clock = std::chrono::steady_clock;
using layers::Network;
using layers::Phase;

const char* kDebianFashionMnist = "/usr/share/datasets/fashion-mnist";

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

DataOptions data_options(const TrainConfig& c, const layers::ZooEntry& model, int64_t max_bytes) {
  DataOptions o;
  o.name = c.dataset;
  o.dir = c.data_dir.empty() && c.dataset == "fashion-mnist" ? kDebianFashionMnist : c.data_dir;
  o.synthetic_dims = c.synthetic_dims.empty() ? model.natural_input : c.synthetic_dims;
  o.synthetic_classes = c.synthetic_classes > 0 ? c.synthetic_classes : model.natural_classes;
  o.synthetic_train = c.synthetic_train;
  o.synthetic_test = c.synthetic_test;
  o.seed = c.seed;
  o.pad = c.pad;
  o.max_bytes = max_bytes;
  return o;
}

layers::ModelSpec model_for(const std::string& name, const Dataset& data, const std::string& dataset_name) {
  layers::zoo_entry(name);  // an unknown name fails here, before shapes are looked at
  try {
    return layers::build_model(name, data.image_dims, data.classes);
  } catch (const Error& e) {
    throw e.with_context("", "; choose a model made for " + dataset_name +
                                 " (baton models lists each model's input), a data set with larger images, or --pad");
  }
}

LrSchedule schedule_for(const TrainConfig& c, int64_t steps_per_epoch) {
  LrSchedule s;
  s.base = c.lr;
  s.shape = parse_lr_shape(c.lr_schedule);
  s.warmup_steps = int64_t(c.warmup_epochs * double(steps_per_epoch));
  s.staleness_warmup_steps = steps_per_epoch;
  BATON_CHECK(!__builtin_mul_overflow(c.epochs, steps_per_epoch, &s.total_steps),
              "--epochs " << c.epochs << " of " << steps_per_epoch << " updates each overflow the update counter; "
                          << "choose fewer epochs");
  for (int64_t epoch : c.lr_milestones) s.milestones.push_back(epoch * steps_per_epoch);
  s.gamma = c.lr_gamma;
  return s;
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

layers::Backend parse_backend(const std::string& name, int device) {
  const layers::Backend backend = layers::backend_named(name);
  if (backend == layers::Backend::cuda)
    device::use_device(device >= 0 ? device : device::default_device(cuda_devices().count));
  return backend;
}

std::vector<layers::Backend> parse_stage_backends(const std::string& list, int stages) {
  std::vector<layers::Backend> backends;
  if (list.empty()) return backends;
  std::stringstream names(list);
  for (std::string name; std::getline(names, name, ',');) backends.push_back(layers::backend_named(name));
  BATON_CHECK(int(backends.size()) == stages, "--stage-backends names " << backends.size() << " backend(s) for "
                                                                        << stages << " stage(s); give one per stage, "
                                                                        << "e.g. --stage-backends cuda,cpu");
  return backends;
}

// --max-memory in bytes: the GiB given, or 90 % of what this machine (or job) may use, shared by
// the MPI ranks on it, each of which loads its own data and model.
int64_t memory_limit(double gib) {
  if (gib > 0) return int64_t(std::min(gib * double(int64_t(1) << 30), 9e18));
  return int64_t(0.9 * double(usable_memory_bytes()) / ranks_on_this_node());
}

void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

int omp_threads() { return omp_get_max_threads(); }

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

int ranks_on_this_node() {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int ranks_here = 1;
  MPI_Comm_size(node, &ranks_here);
  MPI_Comm_free(&node);
  return ranks_here;
}

namespace {

// Per stage: its layers, parameters, forward weight delay and its mitigations in the first epoch,
// and memory, for the start line and the metrics file's config event. Weight bytes count weights,
// gradient, averaged gradient and momentum (4 copies), plus the stashes PipeDream keeps.
nlohmann::json describe_stages(const layers::ModelSpec& model, const RunPlan& plan, const std::vector<StageInfo>& info,
                               const ParallelConfig& p, schedulers::Pipeline first_epoch) {
  const std::vector<Mitigations> mitigations = mitigations_for(p, first_epoch, plan.forward_delays);
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
                      {"mitigations", to_string(mitigations[size_t(s)])},
                      {"activation_bytes", stage.activation_bytes},
                      {"weight_bytes", stage.params * int64_t(sizeof(float)) * (4 + stashes)}});
  }
  return stages;
}

void print_stages(const nlohmann::json& stages) {
  for (const auto& s : stages) {
    const std::string mitigations = s["mitigations"].get<std::string>();
    std::printf("  stage %d: %s (%d layers), %s, forward delay %lld%s, activations %.1f MB, weights %.1f MB\n",
                s["stage"].get<int>(), s["layers"].get<std::string>().c_str(), s["layer_count"].get<int>(),
                (std::to_string(s["params"].get<int64_t>()) + " params").c_str(),
                static_cast<long long>(s["forward_delay"].get<int64_t>()),
                mitigations == "none" ? "" : (" (" + mitigations + ")").c_str(),
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

// What stages are balanced on: FLOPs; each layer's passes timed here (--partition-by time) and
// averaged over the ranks, so that every rank computes the same partition; or a cost file's times
// with what crosses each cut priced on the default link between ranks of a node (README).
ProfiledBalance balancing_costs(const layers::ModelSpec& model, const ParallelConfig& p,
                                const layers::NetworkOptions& network) {
  if (p.stages == 1 || !p.partition.empty() || p.partition_by == "flops") return {layers::node_costs(model), {}};
  if (p.partition_by != "time")
    return profiled_balance(model, read_profile(p.partition_by, model), network.batch, schedulers::NetworkModel{}.intra_node);
  std::vector<layers::NodeCost> costs = layers::measured_costs(model, network, 2);
  std::vector<double> work;
  for (const layers::NodeCost& c : costs) work.push_back(c.work);
  MPI_Allreduce(MPI_IN_PLACE, work.data(), int(work.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  for (size_t i = 0; i < costs.size(); ++i) costs[i].work = work[i] / world_size();
  return {costs, {}};
}

double gib(double bytes) { return bytes / double(int64_t(1) << 30); }

// Refuses, before it is allocated, what would claim more than `limit` bytes in this process.
void check_memory(double bytes, int64_t limit, const std::string& what, const std::string& fix) {
  BATON_CHECK(bytes <= double(limit), std::fixed << std::setprecision(2) << what << " needs about " << gib(bytes)
                                                 << " GiB here, more than --max-memory " << gib(double(limit))
                                                 << " GiB; " << fix << ", or raise --max-memory");
}

// The run plan, once the memory it implies for this process's ranks (all of them in one process,
// else this MPI rank's stage) fits the limit together with `data_bytes` already held.
RunPlan plan_within_memory(const layers::ModelSpec& model, const ParallelConfig& p, int64_t batch_size, int64_t epochs,
                           const layers::NetworkOptions& network, int64_t limit, double data_bytes) {
  const int nodes = int(model.nodes.size());
  const std::string what = "training " + model.name + " in microbatches of " + std::to_string(network.batch) + " images";
  const std::string fix = "lower --batch-size or spread the model over more stages";
  if (p.partition_by == "time" && p.stages > 1 && p.partition.empty())  // it times the whole model first
    check_memory(data_bytes + layers::training_bytes(model, 0, nodes, network.batch, 1), limit, what, fix);
  const ProfiledBalance balance = balancing_costs(model, p, network);
  RunPlan plan = plan_run(model, p, batch_size, epochs, balance.costs, balance.cut_costs);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const bool here = runs_here(p);
  const schedulers::Pipeline first_epoch = pipeline_for_epoch(p, 1, epochs);
  double bytes = data_bytes;
  for (int r = here ? 0 : rank; r < (here ? p.stages * p.replicas : rank + 1); ++r)
    bytes += stage_bytes(model, plan, p, first_epoch, r % p.stages);
  check_memory(bytes, limit, what, fix);
  return plan;
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

namespace {

// Where a run stands between segments: the epoch in progress, its updates done and its totals.
struct Position {
  int64_t epoch = 1;
  int64_t update_in_epoch = 0;
  EpochTotals epoch_so_far;
};

// Step events every `every` updates: the update's minibatch-mean loss, the schedule's learning rate,
// and the images per second since the previous step event.
class StepLog {
 public:
  StepLog(MetricsLog& metrics, int64_t every, int64_t batch, const LrSchedule& schedule)
      : metrics_(metrics), every_(every), batch_(batch), schedule_(schedule) {}

  void add(const Segment& segment, const SegmentResult& result, Clock::time_point segment_start) {
    if (every_ == 0 || !metrics_.enabled()) return;
    if (!started_) {
      last_update_ = segment.updates_before;
      last_time_ = segment_start;
      started_ = true;
    }
    for (int64_t u = 0; u < segment.updates; ++u) {
      const int64_t update = segment.updates_before + u + 1;  // updates done, counting this one
      if (update % every_ != 0) continue;
      const Clock::time_point at =
          segment_start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(result.update_seconds[size_t(u)]));
      const double seconds = std::chrono::duration<double>(at - last_time_).count();
      metrics_.write({{"event", "step"}, {"epoch", segment.epoch}, {"update", update},
                      {"loss", result.update_loss_sums[size_t(u)] / double(batch_)},
                      {"lr", learning_rate(schedule_, update - 1)},
                      {"images_per_sec", seconds > 0 ? double((update - last_update_) * batch_) / seconds : 0.0}});
      last_update_ = update;
      last_time_ = at;
    }
  }

 private:
  MetricsLog& metrics_;
  int64_t every_, batch_;
  const LrSchedule& schedule_;
  bool started_ = false;
  int64_t last_update_ = 0;
  Clock::time_point last_time_;
};

// One training run: data, model, the configuration's ranks, metrics and checkpoints.
class Training {
 public:
  explicit Training(const TrainConfig& c)
      : c_(c), p_(c.parallel), one_process_(runs_here(p_)),
        memory_limit_(memory_limit(c.max_memory_gib)),
        data_(load_data(data_options(c, layers::zoo_entry(c.model), memory_limit_))),
        model_(model_for(c.model, data_.train, c.dataset)),
        network_{parse_backend(c.backend, c.device), std::max<int64_t>(1, c.batch_size / (p_.replicas * p_.microbatches)), 1,
                 c.seed},
        plan_(plan_within_memory(model_, p_, c.batch_size, c.epochs, network_, memory_limit_,
                                 double(data_.train.images.size() + data_.test.images.size()) * sizeof(float))),
        norm_(channel_statistics(data_.train)),
        train_loader_(data_.train, norm_, c.batch_size, c.shuffle, true, c.seed),
        test_loader_(data_.test, norm_, plan_.microbatch, false, false, c.seed),
        steps_(train_loader_.batches_per_epoch()),
        // Every microbatch is read by the first stage (images) and the last (labels); one process
        // reads for all replicas, an MPI rank only for its own.
        source_(train_loader_, (one_process_ ? p_.replicas : 1) * p_.microbatches *
                                   (one_process_ && p_.stages > 1 ? 2 : 1)),
        pipelines_(p_, c.epochs) {
    common_.network = network_;
    common_.stage_backends = parse_stage_backends(p_.stage_backends, p_.stages);
    common_.sgd = SgdOptions{c.momentum, c.weight_decay, c.nesterov};
    common_.schedule = schedule_for(c, steps_);
    run_ = start_run(model_, plan_, p_, common_, &source_, topology_);
    if (!c.checkpoint_dir.empty()) checkpoints_.emplace(c.checkpoint_dir, c.keep_checkpoints);
  }

  TrainingOutcome run() {
    if (p_.dp == "delayed" && p_.replicas == 1 && reports()) {
      std::fprintf(stderr, "baton: warning: --dp delayed with one replica averages nothing but still applies each "
                           "gradient one update late; pass --replicas 2 or more to average\n");
    }
    if (checkpoints_) checkpoints_->prepare(run_->collectives());
    const std::optional<std::string> resumed = resume();
    if (!resumed && !c_.init_from.empty()) load_initial_weights(*run_, model_, c_.init_from);
    announce(resumed);
    StopSignals signals(checkpoints_.has_value());
    StepLog steps(metrics_, c_.log_every, c_.batch_size, common_.schedule);
    TrainingOutcome outcome;
    for (int64_t epoch = position_.epoch; epoch <= c_.epochs; ++epoch) {
      const Position start = epoch == position_.epoch ? position_ : Position{epoch, 0, {}};
      std::optional<EpochTotals> trained = train_epoch(start, steps, signals);
      if (!trained) {
        outcome.stopped = true;
        return outcome;
      }
      outcome.history.push_back(finish_epoch(epoch, *trained, start));
      decide_hybrid_switch(epoch, outcome.history.back().train_loss);
    }
    return outcome;
  }

 private:
  // Trains the rest of an epoch, segment by segment; empty if the run checkpointed and stopped.
  std::optional<EpochTotals> train_epoch(const Position& start, StepLog& steps, const StopSignals& signals) {
    const int64_t epoch = start.epoch;
    ProgressBar bar("epoch " + std::to_string(epoch), steps_, reports() && stdout_is_terminal() && world_size() == 1);
    source_.start_epoch(epoch, start.update_in_epoch, [&](int64_t done) { bar.update(done, ""); });
    epoch_start_ = Clock::now();
    EpochTotals totals = start.epoch_so_far;
    for (int64_t first = start.update_in_epoch; first < steps_;) {
      const Segment segment{epoch, c_.epochs, first, segment_end(epoch, first) - first, (epoch - 1) * steps_ + first,
                            pipelines_.of(epoch)};
      Timeline timeline;
      const bool traced = !traced_ && !p_.timeline.empty();
      const Clock::time_point segment_start = Clock::now();
      SegmentResult result = train_segment(segment, traced ? &timeline : nullptr);
      if (traced && reports()) timeline.write(p_.timeline);
      traced_ = traced_ || traced;
      totals.add(result.totals);
      if (reports()) steps.add(segment, result, segment_start);
      first += segment.updates;
      if (checkpoints_ && checkpoint_and_stop(Position{epoch, first, totals}, signals)) {
        bar.clear();
        return std::nullopt;
      }
    }
    bar.clear();
    return totals;
  }

  // An error while training leaves every checkpoint as it was: the message says where they are.
  SegmentResult train_segment(const Segment& segment, Timeline* timeline) {
    try {
      return run_->train_segment(segment, timeline);
    } catch (const Error& e) {
      if (!checkpoints_) throw;
      throw e.with_context("", "; the checkpoints in '" + checkpoints_->path() + "' are intact (--resume continues "
                               "from the newest)");
    }
  }

  // The end of the segment that starts at update `first` of `epoch`: the next multiple of
  // --checkpoint-every (counted over the whole run), or the epoch's end.
  int64_t segment_end(int64_t epoch, int64_t first) const {
    if (c_.checkpoint_every == 0) return steps_;
    const int64_t before = (epoch - 1) * steps_, next = ((before + first) / c_.checkpoint_every + 1) * c_.checkpoint_every;
    return std::min(steps_, next - before);
  }

  // --hybrid-plateau: after each epoch, whether the next one trains without pipelining.
  void decide_hybrid_switch(int64_t epoch, double train_loss) {
    const double before = pipelines_.last_loss();
    if (!pipelines_.switch_after(epoch, train_loss, [&](bool mine) { return run_->collectives().any(mine); })) return;
    if (!reports()) return;
    std::printf("baton: the training loss fell by %.2f%% in epoch %lld, less than --hybrid-plateau %g: training "
                "without pipelining from epoch %lld\n",
                100 * (1 - train_loss / before), static_cast<long long>(epoch), p_.hybrid_plateau,
                static_cast<long long>(epoch + 1));
    std::fflush(stdout);
    metrics_.write({{"event", "hybrid_switch"}, {"epoch", epoch + 1}, {"update", epoch * steps_},
                    {"train_loss_before", before}, {"train_loss", train_loss}});
  }

  // At a checkpoint point: writes the checkpoint, and stops if any rank was asked to (a signal, or
  // --stop-after-updates) and training is not already over.
  bool checkpoint_and_stop(const Position& at, const StopSignals& signals) {
    const int64_t updates = (at.epoch - 1) * steps_ + at.update_in_epoch;
    const bool asked = signals.received() != 0 || (c_.stop_after_updates > 0 && updates >= c_.stop_after_updates);
    const bool stop = run_->collectives().any(asked) && updates < c_.epochs * steps_;
    const Clock::time_point start = Clock::now();
    const WrittenCheckpoint written = checkpoints_->write(*run_, manifest_at(at), updates);
    const std::string& folder = written.folder;
    metrics_.write({{"event", "checkpoint"}, {"epoch", at.epoch}, {"update", updates}, {"folder", folder},
                    {"bytes", written.bytes}, {"seconds", seconds_since(start)}});
    if (stop && reports()) {
      const std::string why = signals.received() ? std::string("signal ") + strsignal(signals.received())
                              : asked            ? "--stop-after-updates " + std::to_string(c_.stop_after_updates)
                                                 : "a signal to another rank";
      std::printf("baton: stopped after update %lld (epoch %lld) as asked by %s; checkpoint %s holds the run: run the "
                  "same command with --resume to continue\n",
                  static_cast<long long>(updates), static_cast<long long>(at.epoch), why.c_str(), folder.c_str());
      std::fflush(stdout);
    }
    return stop;
  }

  // What a checkpoint records besides tensors: where the run stands and how it was configured.
  nlohmann::json manifest_at(const Position& at) {
    nlohmann::json partition = nlohmann::json::array();
    for (size_t s = 1; s < plan_.stages.size(); ++s) partition.push_back(model_.nodes[size_t(plan_.stages[s].first)].name);
    return {{"epoch", at.epoch}, {"update_in_epoch", at.update_in_epoch}, {"steps_per_epoch", steps_},
            {"epoch_so_far", {{"loss", at.epoch_so_far.loss}, {"hits", at.epoch_so_far.hits},
                              {"images", at.epoch_so_far.images}}},
            {"metrics_bytes", metrics_.bytes()},
            {"hybrid", {{"plateau_switch_epoch", pipelines_.plateau_switch_epoch()}, {"last_loss", pipelines_.last_loss()}}},
            {"model", c_.model}, {"input", model_.input},
            {"classes", model_.classes}, {"dataset", c_.dataset}, {"batch_size", c_.batch_size}, {"seed", c_.seed},
            {"shuffle", c_.shuffle}, {"normalization", {{"mean", norm_.mean}, {"std", norm_.stddev}}},
            {"parallel", {{"stages", p_.stages}, {"replicas", p_.replicas}, {"pipeline", p_.pipeline},
                          {"microbatches", p_.microbatches}, {"dp", p_.dp}, {"split_backward", p_.split_backward},
                          {"partition", partition}}}};
  }

  // --resume: loads the newest usable checkpoint and takes its position; its folder, if any.
  std::optional<std::string> resume() {
    if (!c_.resume) return std::nullopt;
    std::optional<std::string> folder = checkpoints_->newest_usable(run_->collectives());
    if (!folder) {
      if (reports()) {
        std::fprintf(stderr, "baton: warning: no checkpoint in '%s' yet; starting from the beginning\n",
                     c_.checkpoint_dir.c_str());
        std::fflush(stderr);
      }
      return std::nullopt;
    }
    const nlohmann::json m = read_manifest(*folder);
    check_resumable(*folder, m);
    load_checkpoint(*run_, *folder, m);
    const nlohmann::json& so_far = m.at("epoch_so_far");
    position_ = Position{m.at("epoch").get<int64_t>(), m.at("update_in_epoch").get<int64_t>(),
                         EpochTotals{so_far.at("loss").get<double>(), so_far.at("hits").get<int64_t>(),
                                     so_far.at("images").get<int64_t>()}};
    resumed_metrics_bytes_ = m.at("metrics_bytes").get<int64_t>();
    if (m.contains("hybrid"))
      pipelines_.restore(m["hybrid"].at("plateau_switch_epoch").get<int64_t>(), m["hybrid"].at("last_loss").get<double>());
    if (reports()) describe_resume(*folder, m);
    return folder;
  }

  // What must match for the checkpoint's weights and position to mean the same here.
  void check_resumable(const std::string& folder, const nlohmann::json& m) const {
    const std::string from = "checkpoint '" + folder + "' ";
    BATON_CHECK(m.at("model") == c_.model && m.at("input").get<Dims>() == model_.input &&
                    m.at("classes").get<int>() == model_.classes,
                from << "holds " << m.at("model").get<std::string>() << " for " << to_string(m.at("input").get<Dims>())
                     << " images and " << m.at("classes") << " classes, not " << c_.model << " for "
                     << to_string(model_.input) << " and " << model_.classes
                     << "; resume with the model and data it was written for");
    BATON_CHECK(m.at("batch_size").get<int64_t>() == c_.batch_size && m.at("steps_per_epoch").get<int64_t>() == steps_,
                from << "was written with --batch-size " << m.at("batch_size") << " and "
                     << m.at("steps_per_epoch") << " updates per epoch, this run has " << c_.batch_size << " and "
                     << steps_ << "; resume with the same batch size and data");
    BATON_CHECK(m.at("epoch").get<int64_t>() <= c_.epochs,
                from << "is in epoch " << m.at("epoch") << " but --epochs is " << c_.epochs
                     << "; resume with at least that many epochs");
  }

  void describe_resume(const std::string& folder, const nlohmann::json& m) const {
    std::printf("baton: resuming from %s: epoch %lld, %lld of its %lld updates done\n", folder.c_str(),
                static_cast<long long>(position_.epoch), static_cast<long long>(position_.update_in_epoch),
                static_cast<long long>(steps_));
    const nlohmann::json& was = m.at("parallel");
    if (was.at("stages") != p_.stages || was.at("replicas") != p_.replicas) {
      std::printf("baton: the checkpoint was written by %d stage(s) x %d replica(s): weights, momentum and batch-norm "
                  "statistics carry over by name; pipelines start empty, as at an epoch's start\n",
                  was.at("stages").get<int>(), was.at("replicas").get<int>());
    }
  }

  // The start line and the config event, or after a resume the metrics file cut back to what it held
  // at the checkpoint (so that nothing is logged twice) and a resume event.
  void announce(const std::optional<std::string>& resumed) {
    const std::vector<StageInfo> info = run_->stage_info();  // collective: every rank takes part
    if (!reports()) return;
    metrics_ = MetricsLog(c_.metrics, resumed ? resumed_metrics_bytes_ : -1);
    metrics_.mirror_to_tensorboard(c_.tensorboard,
                                   resumed ? (position_.epoch - 1) * steps_ + position_.update_in_epoch : -1);
    nlohmann::json stages = describe_stages(model_, plan_, info, p_, pipelines_.of(1));
    print_start(c_, model_, data_, plan_, stages);
    if (resumed) {
      metrics_.write({{"event", "resume"}, {"checkpoint", *resumed}, {"epoch", position_.epoch},
                      {"update", (position_.epoch - 1) * steps_ + position_.update_in_epoch}});
      return;
    }
    metrics_.write({{"event", "config"}, {"model", c_.model}, {"dataset", c_.dataset},
                    {"params", layers::count_params(model_)}, {"batch_size", c_.batch_size},
                    {"microbatch", plan_.microbatch}, {"threads", omp_get_max_threads()}, {"epochs", c_.epochs},
                    {"replicas", p_.replicas}, {"pipeline", p_.pipeline}, {"microbatches", p_.microbatches},
                    {"dp", p_.dp}, {"split_backward", p_.split_backward}, {"staleness", p_.staleness},
                    {"processes", world_size()}, {"progress", p_.progress}, {"stages", stages}});
  }

  EpochStats finish_epoch(int64_t epoch, const EpochTotals& train, const Position& start) {
    EpochStats stats;
    stats.epoch = epoch;
    stats.seconds = seconds_since(epoch_start_);
    stats.images_per_sec = double(train.images - start.epoch_so_far.images) / stats.seconds;
    EpochTotals test = run_->evaluate(test_loader_);
    stats.train_loss = train.mean_loss();
    stats.train_accuracy = train.accuracy();
    stats.test_loss = test.mean_loss();
    stats.test_accuracy = test.accuracy();
    if (!reports()) return stats;
    std::printf("epoch %lld/%lld  loss %.4f  train %.2f%%  test %.2f%%  %.0f img/s  %.1f s\n",
                static_cast<long long>(epoch), static_cast<long long>(c_.epochs), stats.train_loss,
                100 * stats.train_accuracy, 100 * stats.test_accuracy, stats.images_per_sec, stats.seconds);
    std::fflush(stdout);
    metrics_.write({{"event", "epoch"}, {"epoch", epoch}, {"train_loss", stats.train_loss},
                    {"train_accuracy", stats.train_accuracy}, {"test_loss", stats.test_loss},
                    {"test_accuracy", stats.test_accuracy}, {"images_per_sec", stats.images_per_sec},
                    {"seconds", stats.seconds}, {"lr", learning_rate(common_.schedule, epoch * steps_ - 1)},
                    {"update", epoch * steps_}, {"stage_forward_delays", forward_delays_of(plan_, p_, pipelines_.of(epoch))}});
    return stats;
  }

  bool reports() const { return run_->reports(); }

  const TrainConfig& c_;
  const ParallelConfig& p_;
  const bool one_process_;
  const int64_t memory_limit_;  // --max-memory in bytes (its default takes a collective: computed once)
  DataSplit data_;
  layers::ModelSpec model_;
  layers::NetworkOptions network_;
  RunPlan plan_;
  Normalization norm_;
  BatchLoader train_loader_, test_loader_;
  int64_t steps_;
  LoaderSource source_;
  EpochPipelines pipelines_;
  WorkerOptions common_;
  std::unique_ptr<comm::Topology> topology_;
  std::unique_ptr<Run> run_;
  std::optional<CheckpointDir> checkpoints_;
  MetricsLog metrics_;
  Position position_;
  int64_t resumed_metrics_bytes_ = -1;
  Clock::time_point epoch_start_;
  bool traced_ = false;
};

}  // namespace

TrainingOutcome run_training(const TrainConfig& c) {
  set_threads(c.threads);
  return Training(c).run();
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

Batch synthetic_batch(const layers::ZooEntry& entry, int64_t batch_size, uint64_t seed, int64_t max_bytes) {
  Dataset data = make_synthetic(entry.natural_input, entry.natural_classes, batch_size, seed, "synthetic", 0, max_bytes);
  Batch batch;
  batch.images = std::move(data.images);
  batch.labels = std::move(data.labels);
  batch.count = batch_size;
  return batch;
}

}  // namespace

namespace {

// Median over `repeats` programs of `iterations` updates of the time per update; all processes
// start each timed program together. With --timeline, the last repeat is traced and written.
double median_step_ms(Run& run, const BenchConfig& c) {
  if (c.warmup > 0) run.train_segment(Segment{1, 1, 0, c.warmup, 0}, nullptr);
  std::vector<double> step_ms;
  for (int64_t r = 0; r < c.repeats; ++r) {
    Timeline timeline;
    const bool traced = r + 1 == c.repeats && !c.parallel.timeline.empty();
    MPI_Barrier(MPI_COMM_WORLD);
    auto start = Clock::now();
    run.train_segment(Segment{1, 1, 0, c.iterations, 0}, traced ? &timeline : nullptr);
    MPI_Barrier(MPI_COMM_WORLD);
    step_ms.push_back(1e3 * seconds_since(start) / double(c.iterations));
    if (traced && run.reports()) timeline.write(c.parallel.timeline);
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
  const layers::NetworkOptions network{parse_backend(c.backend, c.device),
                                       std::max<int64_t>(1, c.batch_size / (p.replicas * p.microbatches)), 1, c.seed};
  const double batch_bytes = double(c.batch_size) * double(element_count(entry.natural_input)) * sizeof(float);
  const int64_t limit = memory_limit(c.max_memory_gib);
  RunPlan plan = plan_within_memory(model, p, c.batch_size, 1, network, limit, batch_bytes);
  RepeatedSource source(synthetic_batch(entry, c.batch_size, c.seed, limit));
  WorkerOptions common;
  common.network = network;
  common.stage_backends = parse_stage_backends(p.stage_backends, p.stages);
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
    result["gradient_floats"] = distributed->worker().weights(0).size();
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
