// Implementation of the cost profile: per-pass timing through Network::measure_nodes, medians over
// repeats, the JSON form and its interpolation between microbatch sizes.
#include "runtime/app/cost_profile.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <thread>

#include <mpi.h>

#include "layers/network.hpp"
#include "layers/partition.hpp"
#include "layers/zoo.hpp"
#include "runtime/app/optimizer.hpp"
#include "runtime/app/trainer.hpp"
#include "runtime/base/error.hpp"

namespace baton {
namespace {

constexpr const char* kFormat = "baton-costs 1";
using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + long(values.size() / 2), values.end());
  return values[values.size() / 2];
}

PassSeconds mixed(const PassSeconds& a, const PassSeconds& b, double t) { return a * (1 - t) + b * t; }

PassSeconds at_size(const std::vector<int64_t>& sizes, int64_t microbatch,
                    const std::function<PassSeconds(size_t)>& measured) {
  BATON_CHECK(!sizes.empty(), "the cost profile measured no microbatch size");
  if (microbatch <= sizes.front()) return measured(0) * (double(microbatch) / double(sizes.front()));
  if (microbatch >= sizes.back()) return measured(sizes.size() - 1) * (double(microbatch) / double(sizes.back()));
  const size_t hi = size_t(std::upper_bound(sizes.begin(), sizes.end(), microbatch) - sizes.begin());
  const double t = double(microbatch - sizes[hi - 1]) / double(sizes[hi] - sizes[hi - 1]);
  return mixed(measured(hi - 1), measured(hi), t);
}

// Pass `which` of every repeat: per node its seconds, and the whole pass's.
struct PassRuns {
  std::vector<std::vector<double>> nodes;  // [node][repeat]
  std::vector<double> whole;
};

// One microbatch size: per node and outside the nodes, the median seconds of each pass with the
// weights the previous pass used, and what the first forward and data gradient after a weight
// change cost more (the kernels convert the new weights into their layouts once per version).
void measure_size(const layers::ModelSpec& model, const ProfileCommand& c, int64_t microbatch, CostProfile& profile) {
  const size_t n = model.nodes.size();
  layers::Network net(model, 0, int(n), layers::NetworkOptions{parse_backend(c.backend, c.device), microbatch, 1, c.seed});
  enum { forward, data, weight, fresh_forward, fresh_data, passes };
  std::vector<PassRuns> runs(passes, PassRuns{std::vector<std::vector<double>>(n), {}});
  for (int64_t repeat = 0; repeat <= c.repeats; ++repeat) {
    const bool timed = repeat > 0;  // the first repeat warms caches and primitives
    auto pass = [&](int which, auto&& run) {
      std::vector<double> seconds(n, 0.0);
      MPI_Barrier(MPI_COMM_WORLD);  // under mpirun, every rank's pass runs at the same time
      net.measure_nodes(&seconds);
      const auto start = Clock::now();
      run();
      const double whole = std::chrono::duration<double>(Clock::now() - start).count();
      if (!timed) return;
      runs[size_t(which)].whole.push_back(whole);
      for (size_t i = 0; i < n; ++i) runs[size_t(which)].nodes[i].push_back(seconds[i]);
    };
    auto run_forward = [&] { net.forward(0, layers::Phase::train, uint64_t(repeat), net.current_weights()); };
    auto run_data = [&] { net.backward_data(0, net.current_weights(), 1.0f); };
    net.weights_changed();
    pass(fresh_forward, run_forward);
    pass(fresh_data, run_data);
    pass(forward, run_forward);
    pass(data, run_data);
    pass(weight, [&] { net.backward_weights(0, net.grads().data()); });
  }
  net.measure_nodes(nullptr);
  auto node_median = [&](int which, size_t i) { return median(runs[size_t(which)].nodes[i]); };
  std::vector<PassSeconds> nodes(n), refresh(n);
  PassSeconds sums;
  for (size_t i = 0; i < n; ++i) {
    nodes[i] = {node_median(forward, i), node_median(data, i), node_median(weight, i)};
    refresh[i] = {std::max(0.0, node_median(fresh_forward, i) - nodes[i].forward),
                  std::max(0.0, node_median(fresh_data, i) - nodes[i].data_gradient), 0.0};
    sums = sums + nodes[i];
  }
  profile.node_seconds.push_back(nodes);
  profile.weight_refresh.push_back(refresh);
  profile.outside_nodes.push_back({std::max(0.0, median(runs[forward].whole) - sums.forward),
                                   std::max(0.0, median(runs[data].whole) - sums.data_gradient),
                                   std::max(0.0, median(runs[weight].whole) - sums.weight_gradient)});
}

double optimizer_seconds_per_param(int64_t params, int64_t repeats) {
  std::vector<float> weights(size_t(params), 0.5f), grads(size_t(params), 1e-3f);
  Sgd sgd(size_t(params), SgdOptions{0.9f, 5e-4f, false});
  std::vector<double> seconds;
  for (int64_t r = 0; r <= repeats; ++r) {
    const auto start = Clock::now();
    sgd.step(weights, grads, 1e-3f);
    if (r > 0) seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return median(seconds) / double(params);
}

nlohmann::json pass_json(const PassSeconds& s) {
  return {{"forward", s.forward}, {"data_gradient", s.data_gradient}, {"weight_gradient", s.weight_gradient}};
}

PassSeconds pass_from(const nlohmann::json& j) {
  PassSeconds s{j.at("forward").get<double>(), j.at("data_gradient").get<double>(), j.at("weight_gradient").get<double>()};
  BATON_CHECK(s.forward >= 0 && s.data_gradient >= 0 && s.weight_gradient >= 0, "a time is negative");
  return s;
}

CostProfile profile_from(const nlohmann::json& j) {
  BATON_CHECK(j.at("format").get<std::string>() == kFormat, "its format is not '" << kFormat << "'");
  CostProfile p;
  p.model = j.at("model").get<std::string>();
  p.backend = j.at("backend").get<std::string>();
  p.threads = j.at("threads").get<int>();
  p.ranks = j.value("ranks", 1);
  p.ranks_per_node = j.value("ranks_per_node", p.ranks);
  p.cores = j.value("cores", 0);
  BATON_CHECK(p.threads >= 1 && p.ranks >= 1 && p.ranks_per_node >= 1 && p.ranks_per_node <= p.ranks && p.cores >= 0,
              "its threads, ranks, ranks_per_node or cores are not counts that fit together");
  p.optimizer_seconds_per_param = j.at("optimizer_seconds_per_param").get<double>();
  for (const nlohmann::json& node : j.at("nodes")) p.node_names.push_back(node.at("name").get<std::string>());
  for (const nlohmann::json& size : j.at("microbatches")) {
    p.microbatch_sizes.push_back(size.at("images").get<int64_t>());
    BATON_CHECK(p.microbatch_sizes.back() >= 1 && (p.microbatch_sizes.size() == 1 ||
                                                   p.microbatch_sizes.back() > p.microbatch_sizes.end()[-2]),
                "its microbatch sizes are not positive and ascending");
    std::vector<PassSeconds> nodes;
    for (const nlohmann::json& t : size.at("node_seconds")) nodes.push_back(pass_from(t));
    BATON_CHECK(nodes.size() == p.node_names.size(), "a microbatch size times " << nodes.size() << " layers, not "
                                                                                << p.node_names.size());
    p.node_seconds.push_back(nodes);
    std::vector<PassSeconds> refresh;
    for (const nlohmann::json& t : size.at("weight_refresh")) refresh.push_back(pass_from(t));
    BATON_CHECK(refresh.size() == p.node_names.size(), "a microbatch size has " << refresh.size()
                                                          << " weight refresh times, not " << p.node_names.size());
    p.weight_refresh.push_back(refresh);
    p.outside_nodes.push_back(pass_from(size.at("outside_nodes")));
  }
  BATON_CHECK(!p.microbatch_sizes.empty(), "it times no microbatch size");
  return p;
}

void print_table(const CostProfile& p, const layers::ModelSpec& model, std::ostream& out) {
  const std::vector<layers::NodeCost> bytes = layers::node_costs(model);
  out << std::left << std::setw(28) << "layer" << std::right << std::setw(8) << "images" << std::setw(12)
      << "forward ms" << std::setw(12) << "data ms" << std::setw(12) << "weight ms" << std::setw(13) << "refresh ms"
      << std::setw(12) << "params KB" << std::setw(14) << "out KB/image\n";
  for (size_t s = 0; s < p.microbatch_sizes.size(); ++s) {
    for (size_t i = 0; i < p.node_names.size(); ++i) {
      const PassSeconds& t = p.node_seconds[s][i];
      out << std::left << std::setw(28) << p.node_names[i] << std::right << std::setw(8) << p.microbatch_sizes[s]
          << std::fixed << std::setprecision(3) << std::setw(12) << 1e3 * t.forward << std::setw(12)
          << 1e3 * t.data_gradient << std::setw(12) << 1e3 * t.weight_gradient << std::setw(13)
          << 1e3 * p.weight_refresh[s][i].total() << std::setprecision(1)
          << std::setw(12) << double(bytes[i].param_bytes) / 1e3 << std::setw(13)
          << double(bytes[i].activation_bytes) / 1e3 << "\n";
    }
    const PassSeconds& o = p.outside_nodes[s];
    out << std::left << std::setw(28) << "(outside the layers)" << std::right << std::setw(8) << p.microbatch_sizes[s]
        << std::setprecision(3) << std::setw(12) << 1e3 * o.forward << std::setw(12) << 1e3 * o.data_gradient
        << std::setw(12) << 1e3 * o.weight_gradient << "\n";
  }
  out << "refresh: what the first forward and data gradient after a weight change take more\n";
  if (p.ranks > 1) out << "(the mean of " << p.ranks << " ranks measuring at once, " << p.ranks_per_node << " on a node of "
                       << p.cores << " cores)\n";
  out << "optimizer: " << std::setprecision(3) << 1e9 * p.optimizer_seconds_per_param << " ns per parameter\n";
}

}  // namespace

PassSeconds CostProfile::node(int index, int64_t microbatch) const {
  return at_size(microbatch_sizes, microbatch, [&](size_t s) { return node_seconds[s].at(size_t(index)); });
}

PassSeconds CostProfile::refresh(int index, int64_t microbatch) const {
  size_t nearest = 0;
  for (size_t s = 1; s < microbatch_sizes.size(); ++s)
    if (std::llabs(microbatch_sizes[s] - microbatch) < std::llabs(microbatch_sizes[nearest] - microbatch)) nearest = s;
  return weight_refresh.at(nearest).at(size_t(index));
}

double CostProfile::measured_speed() const {
  const double asked = double(ranks_per_node) * threads;
  return cores > 0 && asked > cores ? cores / asked : 1.0;
}

PassSeconds CostProfile::outside(int64_t microbatch) const {
  return at_size(microbatch_sizes, microbatch, [&](size_t s) { return outside_nodes[s]; });
}

CostProfile measure_profile(const layers::ModelSpec& model, const ProfileCommand& c) {
  set_threads(c.threads);
  CostProfile profile;
  profile.model = model.name;
  profile.backend = c.backend;
  profile.threads = omp_threads();
  profile.cores = int(std::thread::hardware_concurrency());
  for (const layers::Node& node : model.nodes) profile.node_names.push_back(node.name);
  for (int64_t count : c.microbatches) {
    BATON_CHECK(c.batch_size % count == 0, "--batch-size " << c.batch_size << " does not split into " << count
                                                           << " microbatches; list counts that divide it");
    profile.microbatch_sizes.push_back(c.batch_size / count);
  }
  std::sort(profile.microbatch_sizes.begin(), profile.microbatch_sizes.end());
  const double bytes = layers::training_bytes(model, 0, int(model.nodes.size()), profile.microbatch_sizes.back(), 1);
  const int64_t limit = memory_limit(c.max_memory_gib);
  BATON_CHECK(bytes <= double(limit), "profiling " << model.name << " at " << profile.microbatch_sizes.back()
                                                   << " images needs about " << std::fixed << std::setprecision(2)
                                                   << bytes / double(int64_t(1) << 30)
                                                   << " GiB, more than --max-memory "
                                                   << double(limit) / double(int64_t(1) << 30)
                                                   << " GiB; lower --batch-size or raise --max-memory");
  profile.microbatch_sizes.erase(std::unique(profile.microbatch_sizes.begin(), profile.microbatch_sizes.end()),
                                 profile.microbatch_sizes.end());
  for (int64_t size : profile.microbatch_sizes) measure_size(model, c, size, profile);
  profile.optimizer_seconds_per_param = optimizer_seconds_per_param(layers::count_params(model), c.repeats);
  return profile;
}

nlohmann::json to_json(const CostProfile& p) {
  nlohmann::json nodes = nlohmann::json::array(), sizes = nlohmann::json::array();
  for (const std::string& name : p.node_names) nodes.push_back({{"name", name}});
  for (size_t s = 0; s < p.microbatch_sizes.size(); ++s) {
    nlohmann::json times = nlohmann::json::array(), refresh = nlohmann::json::array();
    for (const PassSeconds& t : p.node_seconds[s]) times.push_back(pass_json(t));
    for (const PassSeconds& t : p.weight_refresh[s]) refresh.push_back(pass_json(t));
    sizes.push_back({{"images", p.microbatch_sizes[s]}, {"node_seconds", times}, {"weight_refresh", refresh},
                     {"outside_nodes", pass_json(p.outside_nodes[s])}});
  }
  return {{"format", kFormat}, {"model", p.model}, {"backend", p.backend}, {"threads", p.threads}, {"ranks", p.ranks},
          {"ranks_per_node", p.ranks_per_node}, {"cores", p.cores},
          {"optimizer_seconds_per_param", p.optimizer_seconds_per_param}, {"nodes", nodes}, {"microbatches", sizes}};
}

CostProfile read_profile(const std::string& path, const layers::ModelSpec& model) {
  std::ifstream in(path);
  BATON_CHECK(in, "the cost file '" << path << "' cannot be read; write it with baton profile --model " << model.name
                                    << " --output " << path);
  CostProfile profile;
  try {
    profile = profile_from(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception& e) {
    BATON_FAIL("the cost file '" << path << "' is not one baton profile wrote (" << e.what()
                                 << "); write it again with baton profile");
  } catch (const Error& e) {
    BATON_FAIL("the cost file '" << path << "' is corrupt: " << e.message() << "; write it again with baton profile");
  }
  std::vector<std::string> names;
  for (const layers::Node& node : model.nodes) names.push_back(node.name);
  BATON_CHECK(profile.model == model.name && profile.node_names == names,
              "the cost file '" << path << "' times model '" << profile.model << "', not '" << model.name
                                << "' as built here; profile it with baton profile --model " << model.name);
  return profile;
}

ProfiledBalance profiled_balance(const layers::ModelSpec& model, const CostProfile& profile, int64_t microbatch,
                                 const schedulers::LinkCost& link) {
  ProfiledBalance balance{layers::node_costs(model), {}};
  for (size_t i = 0; i < balance.costs.size(); ++i)
    balance.costs[i].work = profile.node(int(i), microbatch).total() + 1e-9;  // absorbed ReLUs: about 0
  for (int64_t bytes : layers::cut_bytes_per_image(model))
    balance.cut_costs.push_back(bytes == 0 ? 0.0 : 2 * link.seconds(double(bytes) * double(microbatch)));
  return balance;
}

// Every measured time of the profile, in a fixed order.
template <class Visit>
void each_time(CostProfile& profile, Visit visit) {
  for (size_t s = 0; s < profile.microbatch_sizes.size(); ++s) {
    for (PassSeconds& t : profile.node_seconds[s]) visit(t);
    for (PassSeconds& t : profile.weight_refresh[s]) visit(t);
    visit(profile.outside_nodes[s]);
  }
}

// Under mpirun every rank measures at once, as the ranks of a node will compute at once; each time
// becomes the mean over the ranks.
void average_over_ranks(CostProfile& profile) {
  std::vector<double> times;
  each_time(profile, [&](const PassSeconds& t) { times.insert(times.end(), {t.forward, t.data_gradient, t.weight_gradient}); });
  times.push_back(profile.optimizer_seconds_per_param);
  MPI_Allreduce(MPI_IN_PLACE, times.data(), int(times.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  const double ranks = double(world_size());
  auto next = [&, at = size_t(0)]() mutable { return times[at++] / ranks; };
  each_time(profile, [&](PassSeconds& t) { t = {next(), next(), next()}; });
  profile.optimizer_seconds_per_param = next();
  profile.ranks = world_size();
  profile.ranks_per_node = ranks_on_this_node();
}

void run_profile(const ProfileCommand& c, std::ostream& out) {
  const layers::ZooEntry& entry = layers::zoo_entry(c.model);
  const layers::ModelSpec model = layers::build_model(c.model, entry.natural_input, entry.natural_classes);
  CostProfile profile = measure_profile(model, c);
  average_over_ranks(profile);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return;
  print_table(profile, model, out);
  if (c.output.empty()) return;
  std::ofstream file(c.output);
  file << to_json(profile).dump(1) << "\n";
  file.close();
  BATON_CHECK(file, "could not write the cost file '" << c.output << "'; choose another --output");
  out << "costs written to " << c.output << "\n";
}

}  // namespace baton
