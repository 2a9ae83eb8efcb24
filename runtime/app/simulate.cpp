// Implementation of `baton simulate`: stage costs from the profile and the run plan, the cost
// model the discrete-event simulator plays replica 0's programs against, what the spans say about
// busy, waiting and memory, and the search over configurations of a world.
#include "runtime/app/simulate.hpp"

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <sstream>
#include <tuple>

#include "comm/network_probe.hpp"
#include "layers/partition.hpp"
#include "layers/zoo.hpp"
#include "runtime/app/parallel_plan.hpp"
#include "runtime/app/run_plan.hpp"
#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"
#include "schedulers/simulator.hpp"

namespace baton {

using namespace schedulers;

namespace {

constexpr const char* kNetworkFormat = "baton-network 1";

// What one stage costs per microbatch, per gradient bucket (part), and what it sends.
struct StageCost {
  std::vector<PassSeconds> parts;
  std::vector<PassSeconds> refresh;  // a part's first forward and data gradient with new weights, extra
  std::vector<double> optimizer;     // seconds of a part's optimizer step
  std::vector<double> part_bytes;    // a part's gradient, averaged over the replicas
  double activation_bytes = 0;       // sent to the next stage per microbatch (its gradient comes back)
  std::vector<int> group;            // the ranks of this stage's replicas
};

// Layer time of nodes [first, last), plus their share of the time a whole pass spends outside the
// layers (in proportion to their layer time).
PassSeconds range_seconds(const CostProfile& profile, int first, int last, int64_t microbatch) {
  PassSeconds range, whole;
  for (int i = 0; i < int(profile.node_names.size()); ++i) {
    const PassSeconds t = profile.node(i, microbatch);
    whole = whole + t;
    if (i >= first && i < last) range = range + t;
  }
  const PassSeconds outside = profile.outside(microbatch);
  auto share = [](double part, double all, double extra) { return all > 0 ? part + extra * part / all : part; };
  return {share(range.forward, whole.forward, outside.forward),
          share(range.data_gradient, whole.data_gradient, outside.data_gradient),
          share(range.weight_gradient, whole.weight_gradient, outside.weight_gradient)};
}

// Stage costs at full speed: where the simulation shares cores, a profile measured by more threads
// than its node had cores is scaled to what one rank computes alone.
std::vector<StageCost> stage_costs(const Scenario& s, const RunPlan& plan) {
  const std::vector<layers::NodeCost> nodes = layers::node_costs(s.model);
  const std::vector<int64_t> cut_bytes = layers::cut_bytes_per_image(s.model);
  const ParallelConfig& p = s.parallel;
  const bool sharded = p.replicas > 1 && p.dp == "sharded";
  const double speed = s.network.cores_per_node > 0 ? s.profile.measured_speed() : 1.0;
  std::vector<StageCost> stages;
  for (int k = 0; k < p.stages; ++k) {
    const auto [first, last] = plan.stages[size_t(k)];
    StageCost stage;
    for (const layers::NodeRange& part : plan.parts[size_t(k)]) {
      const int a = first + part.begin, b = part.end < 0 ? last : first + part.end;
      stage.parts.push_back(range_seconds(s.profile, a, b, plan.microbatch) * speed);
      PassSeconds refresh;
      for (int i = a; i < b; ++i) refresh = refresh + s.profile.refresh(i, plan.microbatch);
      stage.refresh.push_back(refresh * speed);
      double bytes = 0;
      for (int i = a; i < b; ++i) bytes += double(nodes[size_t(i)].param_bytes);
      stage.part_bytes.push_back(bytes);
      const double params = bytes / sizeof(float) / (sharded ? p.replicas : 1);
      stage.optimizer.push_back(params * s.profile.optimizer_seconds_per_param * speed);
    }
    stage.activation_bytes = double(cut_bytes[size_t(last)]) * double(plan.microbatch);  // 0 after the last
    for (int r = 0; r < p.replicas; ++r) stage.group.push_back(rank_of(k, r, p.stages));
    stages.push_back(std::move(stage));
  }
  return stages;
}

// Which weight version each rank's passes of each part last used: a pass with another version pays
// the refresh (the simulator asks in program order).
class VersionsSeen {
 public:
  bool changed(int rank, int part, int pass, int64_t version) {
    auto [it, first] = last_.try_emplace({rank, part, pass}, version);
    const bool changed = first || it->second != version;
    it->second = version;
    return changed;
  }

 private:
  std::map<std::tuple<int, int, int>, int64_t> last_;
};

CostModel cost_model(const std::vector<StageCost>& stages, const NetworkModel& network, bool sharded) {
  auto seen = std::make_shared<VersionsSeen>();
  // Where the node has no core to spare, the rank's own core does part of the collective's work.
  auto stolen = [&stages, &network, sharded](const Program& p, const StartAverage& i) {
    const StageCost& s = stages[size_t(p.stage)];
    return network.compute_stolen(s.part_bytes[size_t(i.part)], s.group, sharded ? 1 : 2);
  };
  auto compute = [&stages, seen, stolen](const Program& p, const Instruction& instruction) {
    const StageCost& s = stages[size_t(p.stage)];
    auto refreshed = [&](int part, int pass, int64_t version, double PassSeconds::*field) {
      return seen->changed(p.rank, part, pass, version) ? s.refresh[size_t(part)].*field : 0.0;
    };
    return std::visit(Overloaded{
                          [&](const Forward& i) {
                            return s.parts[size_t(i.part)].forward + refreshed(i.part, 0, i.version, &PassSeconds::forward);
                          },
                          [&](const BackwardData& i) {
                            return s.parts[size_t(i.part)].data_gradient +
                                   refreshed(i.part, 1, i.version, &PassSeconds::data_gradient);
                          },
                          [&](const BackwardWeights& i) { return s.parts[size_t(i.part)].weight_gradient; },
                          [&](const OptimizerStep& i) { return s.optimizer[size_t(i.part)]; },
                          [&](const StartAverage& i) { return stolen(p, i); },
                          [](const auto&) { return 0.0; },
                      },
                      instruction);
  };
  auto latency = [&stages, &network, sharded, stolen](const Program& p, const Instruction& instruction) {
    const StageCost& s = stages[size_t(p.stage)];
    return std::visit(
        Overloaded{
            [&](const SendActivation& i) { return network.point_to_point(s.activation_bytes, p.rank, i.to); },
            [&](const SendGrad& i) {
              return network.point_to_point(stages[size_t(p.stage - 1)].activation_bytes, p.rank, i.to);
            },
            [&](const StartAverage& i) {
              const double bytes = s.part_bytes[size_t(i.part)];
              const double total = sharded ? network.reduce_scatter(bytes, s.group) : network.allreduce(bytes, s.group);
              return total - stolen(p, i);  // the rank's core did that part already
            },
            [&](const StartGather& i) { return network.all_gather(s.part_bytes[size_t(i.part)], s.group); },
            [](const auto&) { return 0.0; },
        },
        instruction);
  };
  return CostModel{compute, latency, {}};
}

// Replica 0's ranks (rank k is its stage k) on their nodes. Each loads a node it is on with its
// threads for every replica of its stage there: the replicas are symmetric, so they compute when it
// does. Nodes without a rank of replica 0 are not simulated.
CoreSharing core_sharing(const ParallelConfig& p, const NetworkModel& network, int threads) {
  CoreSharing sharing{network.cores_per_node, {}, {}};
  const int last_node = network.node_of(p.stages - 1);
  for (int k = 0; k < p.stages; ++k) {
    sharing.node.push_back(network.node_of(k));
    std::map<int, double> load;
    for (int r = 0; r < p.replicas; ++r) {
      const int node = network.node_of(rank_of(k, r, p.stages));
      if (node <= last_node) load[node] += threads;
    }
    sharing.load.emplace_back(load.begin(), load.end());
  }
  return sharing;
}

bool is_collective_wait(const Instruction& i) {
  return std::holds_alternative<WaitAverage>(i) || std::holds_alternative<WaitGather>(i);
}

// Busy, exposed communication and bubble of one rank, as fractions of the makespan.
void account(const Program& program, const Simulation& sim, StagePrediction& stage) {
  const std::vector<Span>& spans = sim.spans[size_t(program.rank)];
  double previous_end = 0, communication = 0;
  for (size_t k = 0; k < spans.size(); ++k) {
    if (is_collective_wait(program.instructions[k])) communication += spans[k].start - previous_end;
    previous_end = spans[k].end;
  }
  const double busy = sim.busy[size_t(program.rank)];
  stage.busy = busy / sim.makespan;
  stage.communication = communication / sim.makespan;
  stage.bubble = std::max(0.0, 1.0 - stage.busy - stage.communication);
}

void write_timeline(const std::vector<Program>& programs, const Simulation& sim, Timeline& timeline) {
  for (const Program& p : programs) {
    timeline.name_row(p.rank, "rank " + std::to_string(p.rank) + ": stage " + std::to_string(p.stage) + ", replica 0");
    for (size_t k = 0; k < p.instructions.size(); ++k) {
      const Span& span = sim.spans[size_t(p.rank)][k];
      const bool compute = span.end > span.start;
      timeline.add(p.rank, to_string(p.instructions[k]), compute ? "compute" : "other", 1e6 * span.start,
                   1e6 * span.end);
    }
  }
}

double mean_of(const std::vector<StagePrediction>& stages, double StagePrediction::*field) {
  double sum = 0;
  for (const StagePrediction& s : stages) sum += s.*field;
  return stages.empty() ? 0 : sum / double(stages.size());
}

}  // namespace

double Prediction::bubble_fraction() const { return mean_of(stages, &StagePrediction::bubble); }
double Prediction::communication_fraction() const { return mean_of(stages, &StagePrediction::communication); }
double Prediction::peak_bytes() const {
  double most = 0;
  for (const StagePrediction& s : stages) most = std::max(most, s.peak_bytes);
  return most;
}

Prediction predict(const Scenario& s, Timeline* timeline) {
  const ParallelConfig& p = s.parallel;
  // Stages balance FLOPs, the profile's layer times (--partition-by time: what the executor would
  // measure), or a cost file's times plus what crosses each cut over the link between stages.
  const int64_t microbatch = std::max<int64_t>(1, s.batch_size / (int64_t(p.replicas) * p.microbatches));
  ProfiledBalance balance{layers::node_costs(s.model), {}};
  if (p.partition_by == "time") {
    balance.costs = profiled_balance(s.model, s.profile, microbatch, s.network.intra_node).costs;
  } else if (p.partition_by != "flops") {
    balance = profiled_balance(s.model, read_profile(p.partition_by, s.model), microbatch, s.network.link(0, 1));
  }
  const RunPlan plan = plan_run(s.model, p, s.batch_size, 1, balance.costs, balance.cut_costs);
  // Replica 0 of a run with two replicas has the programs of replica 0 of any larger one.
  ParallelConfig two = p;
  two.replicas = std::min(p.replicas, 2);
  const Pipeline pipeline = pipeline_for_epoch(p, 1, 1);
  const ScheduleConfig config = schedule_for(two, pipeline, s.iterations, part_counts(plan));
  std::vector<Program> programs = build_programs(config);
  programs.resize(size_t(p.stages));
  const std::vector<StageCost> stages = stage_costs(s, plan);
  CostModel costs = cost_model(stages, s.network, p.replicas > 1 && p.dp == "sharded");
  costs.cores = core_sharing(p, s.network, s.profile.threads);
  const Simulation sim = simulate(programs, costs);
  BATON_CHECK(!sim.deadlocked, "the simulated programs deadlock: " << sim.blocked);

  Prediction prediction;
  prediction.step_seconds = sim.makespan / double(s.iterations);
  prediction.images_per_sec = double(s.batch_size) / prediction.step_seconds;
  for (const Program& program : programs) {
    StagePrediction stage;
    account(program, sim, stage);
    stage.peak_bytes = stage_bytes(s.model, plan, p, pipeline, program.stage);
    stage.forward_delay = plan.forward_delays[size_t(program.stage)];
    prediction.stages.push_back(stage);
  }
  for (size_t k = 1; k < plan.stages.size(); ++k)
    prediction.partition.push_back(s.model.nodes[size_t(plan.stages[k].first)].name);
  if (timeline) write_timeline(programs, sim, *timeline);
  return prediction;
}

namespace {

nlohmann::json link_json(const LinkCost& link) {
  return {{"latency_s", link.latency}, {"bandwidth_bytes_per_s", link.bandwidth}};
}

LinkCost link_from(const nlohmann::json& j) {
  return LinkCost{j.at("latency_s").get<double>(), j.at("bandwidth_bytes_per_s").get<double>()};
}

std::string mib(double bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << bytes / double(1 << 20);
  return out.str();
}

std::string describe(const ParallelConfig& p) {
  std::ostringstream out;
  out << p.stages << "x" << p.replicas << " " << (p.stages > 1 ? p.pipeline : "no pipeline");
  if (p.replicas > 1) out << ", " << p.dp;
  if (p.microbatches > 1) out << ", " << p.microbatches << " microbatches";
  if (p.split_backward) out << ", split backward";
  return out.str();
}

nlohmann::json prediction_json(const Prediction& r, const ParallelConfig& p) {
  nlohmann::json stages = nlohmann::json::array();
  for (const StagePrediction& s : r.stages)
    stages.push_back({{"busy", s.busy}, {"communication", s.communication}, {"bubble", s.bubble},
                      {"peak_bytes", s.peak_bytes}, {"forward_delay", s.forward_delay}});
  return {{"stages", p.stages}, {"replicas", p.replicas}, {"pipeline", p.pipeline}, {"dp", p.dp},
          {"microbatches", p.microbatches}, {"split_backward", p.split_backward},
          {"step_ms", 1e3 * r.step_seconds}, {"images_per_sec", r.images_per_sec},
          {"bubble_fraction", r.bubble_fraction()}, {"communication_fraction", r.communication_fraction()},
          {"peak_bytes", r.peak_bytes()}, {"partition", r.partition}, {"per_stage", stages}};
}

void print_prediction(const Prediction& r, std::ostream& out) {
  out << std::fixed << std::setprecision(2) << "step " << 1e3 * r.step_seconds << " ms, " << std::setprecision(1)
      << r.images_per_sec << " images/s; bubble " << 100 * r.bubble_fraction() << " %, exposed communication "
      << 100 * r.communication_fraction() << " %\n";
  if (!r.partition.empty()) {
    out << "stages begin at:";
    for (const std::string& name : r.partition) out << " " << name;
    out << "\n";
  }
  out << std::setw(6) << "stage" << std::setw(9) << "busy %" << std::setw(9) << "comm %" << std::setw(10) << "bubble %"
      << std::setw(12) << "peak MiB" << std::setw(15) << "forward delay\n";
  for (size_t k = 0; k < r.stages.size(); ++k) {
    const StagePrediction& s = r.stages[k];
    out << std::setw(6) << k << std::setw(9) << 100 * s.busy << std::setw(9) << 100 * s.communication
        << std::setw(10) << 100 * s.bubble << std::setw(12) << mib(s.peak_bytes) << std::setw(14) << s.forward_delay
        << "\n";
  }
}

// Every configuration of `world` ranks the builders support, for this batch.
std::vector<ParallelConfig> candidates(const ParallelConfig& base, int world, int64_t batch, int max_stages) {
  std::vector<ParallelConfig> all;
  for (int stages = 1; stages <= std::min(world, max_stages); ++stages) {
    if (world % stages) continue;
    const int replicas = world / stages;
    if (replicas > batch) continue;
    const std::vector<std::string> pipelines =
        stages == 1 ? std::vector<std::string>{"none"} : std::vector<std::string>{"gpipe", "zb", "pipedream", "stale", "layerpipe"};
    const std::vector<std::string> averagings =
        replicas == 1 ? std::vector<std::string>{"sync"}
                      : std::vector<std::string>{"sync", "overlap", "delayed", "sharded"};
    for (const std::string& pipeline : pipelines) {
      const bool one_f_one_b = updates_every_microbatch(parse_pipeline(pipeline));
      for (const std::string& dp : averagings) {
        if (one_f_one_b && dp == "delayed") continue;
        for (int microbatches = 1; microbatches <= (one_f_one_b || stages == 1 ? 1 : 32); microbatches *= 2) {
          if (batch % (int64_t(replicas) * microbatches)) continue;
          const bool splits_anyway = pipeline == "zb" || pipeline == "layerpipe";
          for (bool split : stages > 1 && !splits_anyway ? std::vector<bool>{false, true} : std::vector<bool>{false}) {
            ParallelConfig p = base;
            p.stages = stages;
            p.replicas = replicas;
            p.pipeline = pipeline;
            p.dp = dp;
            p.microbatches = microbatches;
            p.split_backward = split;
            p.partition.clear();
            all.push_back(p);
          }
        }
      }
    }
  }
  return all;
}

void search(const SimulateCommand& c, const layers::ModelSpec& model, const CostProfile& profile,
            const NetworkModel& network, std::ostream& out) {
  const int world = c.nodes * c.ranks_per_node;
  struct Ranked {
    ParallelConfig parallel;
    Prediction prediction;
  };
  std::vector<Ranked> fitting;
  int over_memory = 0;
  const double limit = c.memory_per_rank_gib * double(int64_t(1) << 30);
  ParallelConfig base = c.parallel;
  if (base.partition_by == "flops") base.partition_by = c.costs;  // the profile's times and what crosses each cut
  for (const ParallelConfig& p : candidates(base, world, c.batch_size, int(model.nodes.size()))) {
    Prediction r = predict(Scenario{model, profile, network, p, c.batch_size, c.iterations});
    if (limit > 0 && r.peak_bytes() > limit) {
      ++over_memory;
      continue;
    }
    fitting.push_back({p, std::move(r)});
  }
  std::stable_sort(fitting.begin(), fitting.end(), [](const Ranked& a, const Ranked& b) {
    return a.prediction.images_per_sec > b.prediction.images_per_sec;
  });
  out << fitting.size() << " configuration(s) of " << world << " ranks (" << c.nodes << " node(s) x "
      << c.ranks_per_node << ") for " << model.name << " at batch " << c.batch_size;
  if (limit > 0) out << "; " << over_memory << " need more than --memory-per-rank " << c.memory_per_rank_gib << " GiB";
  out << "\n" << std::setw(5) << "#" << "  " << std::left << std::setw(56) << "configuration" << std::right
      << std::setw(11) << "step ms" << std::setw(12) << "images/s" << std::setw(10) << "bubble %" << std::setw(9)
      << "comm %" << std::setw(12) << "peak MiB" << "  forward delays\n";
  for (size_t i = 0; i < fitting.size(); ++i) {
    const Prediction& r = fitting[i].prediction;
    out << std::setw(5) << i + 1 << "  " << std::left << std::setw(56) << describe(fitting[i].parallel) << std::right
        << std::fixed << std::setprecision(2) << std::setw(11) << 1e3 * r.step_seconds << std::setprecision(1)
        << std::setw(12) << r.images_per_sec << std::setw(10) << 100 * r.bubble_fraction() << std::setw(9)
        << 100 * r.communication_fraction() << std::setw(12) << mib(r.peak_bytes()) << " ";
    for (const StagePrediction& s : r.stages) out << " " << s.forward_delay;
    out << "\n";
  }
}

}  // namespace

NetworkModel read_network(const std::string& path) {
  std::ifstream in(path);
  BATON_CHECK(in, "the network file '" << path << "' cannot be read; write it with baton profile --network under "
                                       << "mpirun, or leave --network out for the defaults");
  NetworkModel network;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    BATON_CHECK(j.at("format").get<std::string>() == kNetworkFormat, "its format is not '" << kNetworkFormat << "'");
    network.intra_node = link_from(j.at("intra_node"));
    network.inter_node = link_from(j.at("inter_node"));
    network.reduction_bandwidth = j.value("reduction_bytes_per_s", 0.0);
    network.reduction_steals_compute = j.value("reduction_steals_compute", false);
    network.progress_interval = j.value("progress_interval_s", network.progress_interval);
    network.cores_per_node = j.value("cores_per_node", 0.0);
    network.check();
  } catch (const nlohmann::json::exception& e) {
    BATON_FAIL("the network file '" << path << "' is not one baton wrote (" << e.what() << "); write it again with "
                                    << "baton profile --network");
  } catch (const Error& e) {
    BATON_FAIL("the network file '" << path << "' is corrupt: " << e.message());
  }
  return network;
}

nlohmann::json to_json(const NetworkModel& network) {
  return {{"format", kNetworkFormat}, {"intra_node", link_json(network.intra_node)},
          {"inter_node", link_json(network.inter_node)}, {"reduction_bytes_per_s", network.reduction_bandwidth},
          {"reduction_steals_compute", network.reduction_steals_compute},
          {"progress_interval_s", network.progress_interval}, {"cores_per_node", network.cores_per_node}};
}

void run_network_profile(const ProfileCommand& c, std::ostream& out) {
  const comm::NetworkProbe probe = comm::probe_network(MPI_COMM_WORLD, int(std::min<int64_t>(c.repeats, 1000)));
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return;
  auto describe_link = [&](const char* name, const LinkCost& link, bool measured) {
    out << std::setw(12) << name << ": latency " << std::fixed << std::setprecision(2) << 1e6 * link.latency
        << " us, bandwidth " << link.bandwidth / 1e9 << " GB/s" << (measured ? "" : " (not measured: the default)")
        << "\n";
  };
  out << probe.nodes << " node(s), " << probe.model.ranks_per_node << " rank(s) on rank 0's node\n";
  describe_link("within nodes", probe.model.intra_node, probe.intra_measured);
  describe_link("between nodes", probe.model.inter_node, probe.inter_measured);
  out << "allreduce of " << probe.allreduce_bytes / 1e6 << " MB over all ranks: measured " << 1e3 * probe.allreduce_seconds
      << " ms, its ring transfers " << 1e3 * probe.allreduce_transfers << " ms; reduction bandwidth "
      << probe.model.reduction_bandwidth / 1e9 << " GB/s"
      << (probe.model.reduction_steals_compute ? ", on the cores the ranks compute on (none to spare)" : "") << "\n";
  if (c.output.empty()) return;
  nlohmann::json j = to_json(probe.model);
  j["measured"] = {{"intra_node", probe.intra_measured}, {"inter_node", probe.inter_measured},
                   {"allreduce", {{"bytes", probe.allreduce_bytes}, {"seconds", probe.allreduce_seconds},
                                  {"transfer_seconds", probe.allreduce_transfers}}}};
  std::ofstream file(c.output);
  file << j.dump(1) << "\n";
  file.close();
  BATON_CHECK(file, "could not write the network file '" << c.output << "'; choose another --output");
  out << "network written to " << c.output << "\n";
}

void run_simulate(const SimulateCommand& c, std::ostream& out) {
  const layers::ZooEntry& entry = layers::zoo_entry(c.model);
  const layers::ModelSpec model = layers::build_model(c.model, entry.natural_input, entry.natural_classes);
  const CostProfile profile = read_profile(c.costs, model);
  NetworkModel network = c.network.empty() ? NetworkModel{} : read_network(c.network);
  if (c.cores_per_node > 0) network.cores_per_node = c.cores_per_node;
  if (c.search) {
    network.ranks_per_node = c.ranks_per_node;
    search(c, model, profile, network, out);
    return;
  }
  const int ranks = c.parallel.stages * c.parallel.replicas;
  network.ranks_per_node = c.ranks_per_node > 0 ? c.ranks_per_node
                           : c.nodes > 0        ? (ranks + c.nodes - 1) / c.nodes
                                                : ranks;
  const int64_t nodes = (ranks + network.ranks_per_node - 1) / network.ranks_per_node;
  BATON_CHECK(c.nodes == 0 || nodes <= c.nodes, ranks << " ranks at " << network.ranks_per_node << " per node need "
                                                      << nodes << " nodes, more than --nodes " << c.nodes
                                                      << "; raise --nodes or --ranks-per-node");
  BATON_CHECK(c.parallel.pipeline != "hybrid", "hybrid runs stale epochs, then gpipe ones; simulate each with "
                                               "--pipeline stale or --pipeline gpipe");
  Timeline timeline;
  const Prediction r = predict(Scenario{model, profile, network, c.parallel, c.batch_size, c.iterations},
                               c.parallel.timeline.empty() ? nullptr : &timeline);
  out << "simulated " << model.name << " at batch " << c.batch_size << ": " << describe(c.parallel) << ", on "
      << nodes << " node(s) x " << network.ranks_per_node << " rank(s)"
      << (network.cores_per_node > 0 ? " sharing " + std::to_string(int(network.cores_per_node)) + " core(s)"
                                     : std::string(", a core each"))
      << "; costs " << c.costs << " (" << profile.backend
      << ", " << profile.threads << " thread(s))\n";
  print_prediction(r, out);
  if (!c.parallel.timeline.empty()) {
    timeline.write(c.parallel.timeline);
    out << "timeline of replica 0 written to " << c.parallel.timeline << " (open it in https://ui.perfetto.dev)\n";
  }
  out << prediction_json(r, c.parallel).dump() << "\n";
}

}  // namespace baton
