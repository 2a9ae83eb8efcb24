// The stage partitioner: per-node costs, the exact min-max contiguous split (with a parameter
// memory limit) refined by least squares among the optimal splits, and --partition parsing.
// Every step is a pure function of its input, so all ranks compute the same stages.
#include "layers/partition.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

#include "layers/network.hpp"
#include "runtime/base/error.hpp"

namespace baton::layers {
namespace {

constexpr double kInfeasible = std::numeric_limits<double>::infinity();

// Costs of contiguous node ranges [first, last) from prefix sums; a range whose parameter bytes
// exceed the limit costs kInfeasible.
struct Ranges {
  std::vector<double> cost{0.0};   // cost[i]: the first i nodes together
  std::vector<int64_t> bytes{0};   // the same for parameter bytes
  int64_t byte_limit = 0;          // 0: none
  std::vector<double> cut;         // empty, or per cut what a boundary there adds to each side

  int node_count() const { return static_cast<int>(cost.size()) - 1; }
  double operator()(int first, int last) const {
    if (byte_limit > 0 && bytes[last] - bytes[first] > byte_limit) return kInfeasible;
    return cost[last] - cost[first] + (cut.empty() ? 0.0 : cut[first] + cut[last]);
  }
  // Without cut costs a range never gets cheaper as it grows, which the searches below exploit.
  bool monotone() const { return cut.empty(); }
};

template <class CostOf>
Ranges make_ranges(const std::vector<NodeCost>& costs, CostOf cost_of, int64_t byte_limit) {
  Ranges ranges;
  ranges.byte_limit = byte_limit;
  for (const NodeCost& node : costs) {
    ranges.cost.push_back(ranges.cost.back() + cost_of(node));
    ranges.bytes.push_back(ranges.bytes.back() + node.param_bytes);
  }
  return ranges;
}

// min over first in [lowest, last) of max(before[first], ranges(first, last)). `before` never
// decreases and the range cost never increases with `first`, so the crossing is found by bisection
// and the optimum is at it or just before it.
double best_with_last_stage(const std::vector<double>& before, const Ranges& ranges, int lowest, int last) {
  if (!ranges.monotone()) {
    double best = kInfeasible;
    for (int first = lowest; first < last; ++first) best = std::min(best, std::max(before[first], ranges(first, last)));
    return best;
  }
  int crossing = last;  // the smallest first with before[first] >= ranges(first, last); last if none
  for (int low = lowest, high = last - 1; low <= high;) {
    const int middle = low + (high - low) / 2;
    if (before[middle] >= ranges(middle, last)) {
      crossing = middle;
      high = middle - 1;
    } else {
      low = middle + 1;
    }
  }
  double best = crossing < last ? before[crossing] : kInfeasible;
  if (crossing > lowest) best = std::min(best, ranges(crossing - 1, last));
  return best;
}

// The smallest possible cost of the most expensive of `stages` non-empty stages (kInfeasible when
// no split fits the byte limit). best[i]: that minimum for the first i nodes in k stages; it never
// decreases with i (an extra node never makes a prefix cheaper to split).
double min_max_stage_cost(const Ranges& ranges, int stages) {
  const int n = ranges.node_count();
  std::vector<double> best(n + 1, kInfeasible);
  for (int i = 1; i <= n; ++i) best[i] = ranges(0, i);
  for (int k = 2; k <= stages; ++k) {
    std::vector<double> next(n + 1, kInfeasible);
    for (int i = k; i <= n; ++i) next[i] = best_with_last_stage(best, ranges, k - 1, i);
    best = std::move(next);
  }
  return best[n];
}

// Among the splits whose every stage costs at most `cap`, the one with the smallest sum of squared
// stage costs; on ties the last stage starts as early as possible, then the one before it, and so on.
Partition least_squares_split(const Ranges& ranges, int stages, double cap) {
  const int n = ranges.node_count();
  std::vector<double> best(n + 1, kInfeasible);
  std::vector<std::vector<int>> start(stages + 1, std::vector<int>(n + 1, -1));
  for (int i = 1; i <= n && (ranges(0, i) <= cap || !ranges.monotone()); ++i)
    if (ranges(0, i) <= cap) best[i] = ranges(0, i) * ranges(0, i);
  for (int k = 2; k <= stages; ++k) {
    std::vector<double> next(n + 1, kInfeasible);
    for (int i = k; i <= n; ++i) {
      for (int first = i - 1; first >= k - 1 && (ranges(first, i) <= cap || !ranges.monotone()); --first) {
        if (ranges(first, i) > cap) continue;
        const double total = best[first] + ranges(first, i) * ranges(first, i);
        if (total < kInfeasible && total <= next[i]) {
          next[i] = total;
          start[k][i] = first;
        }
      }
    }
    best = std::move(next);
  }
  Partition partition;
  for (int k = stages, last = n; k >= 1; --k) {
    const int first = k == 1 ? 0 : start[k][last];
    partition.first_nodes.push_back(first);
    last = first;
  }
  std::reverse(partition.first_nodes.begin(), partition.first_nodes.end());
  return partition;
}

void check_costs(const std::vector<NodeCost>& costs) {
  for (size_t i = 0; i < costs.size(); ++i) {
    BATON_CHECK(std::isfinite(costs[i].work) && costs[i].work >= 0 && costs[i].param_bytes >= 0,
                "node " << i << " has a negative or non-finite cost (" << costs[i].work << " FLOPs, "
                        << costs[i].param_bytes << " parameter bytes); costs must be finite and at least 0");
  }
}

// Throws the sentence that says why `stages` stages cannot meet `byte_limit` and what would.
[[noreturn]] void reject_memory_limit(const std::vector<NodeCost>& costs, int stages, int64_t byte_limit) {
  const auto largest = std::max_element(costs.begin(), costs.end(), [](const NodeCost& a, const NodeCost& b) {
    return a.param_bytes < b.param_bytes;
  });
  BATON_CHECK(largest->param_bytes <= byte_limit,
              "node " << (largest - costs.begin()) << " alone has " << largest->param_bytes
                      << " bytes of parameters, more than the limit of " << byte_limit
                      << " bytes per stage; raise the limit to at least " << largest->param_bytes << " bytes");
  const Ranges bytes = make_ranges(costs, [](const NodeCost& node) { return double(node.param_bytes); }, 0);
  BATON_FAIL("the parameters cannot be split into " << stages << " stages of at most " << byte_limit
                                                    << " bytes each; the smallest limit that works with " << stages
                                                    << " stages is " << int64_t(min_max_stage_cost(bytes, stages))
                                                    << " bytes, or use more stages");
}

std::string trimmed(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

// The comma-separated entries of --partition, trimmed; none for an empty text.
std::vector<std::string> partition_entries(const std::string& text) {
  std::vector<std::string> entries;
  if (trimmed(text).empty()) return entries;
  std::istringstream stream(text + ",");
  for (std::string entry; std::getline(stream, entry, ',');) {
    entry = trimmed(entry);
    BATON_CHECK(!entry.empty(), "--partition '" << text << "' has an empty entry; separate node names or indices "
                                                   "with single commas, as in 'layer2.0.conv1,layer3.0.conv1'");
    entries.push_back(entry);
  }
  return entries;
}

// The node an entry names: a node index when it is a whole number, else a node name of `model`.
int64_t resolve_node(const std::string& entry, const ModelSpec& model) {
  int64_t index = 0;
  const auto [end, error] = std::from_chars(entry.data(), entry.data() + entry.size(), index);
  if (end == entry.data() + entry.size()) {
    return error == std::errc() ? index : std::numeric_limits<int64_t>::max();  // too large to be an index
  }
  const auto found = std::find_if(model.nodes.begin(), model.nodes.end(),
                                  [&](const Node& node) { return node.name == entry; });
  BATON_CHECK(found != model.nodes.end(), "the model '" << model.name << "' has no layer named '" << entry
                                                        << "'; layer names look like '"
                                                        << model.nodes[model.nodes.size() / 2].name << "'");
  return found - model.nodes.begin();
}

}  // namespace

std::vector<NodeCost> node_costs(const ModelSpec& model) {
  const ModelShapes shapes = infer_shapes(model, 1);
  std::vector<NodeCost> costs;
  for (size_t i = 0; i < model.nodes.size(); ++i) {
    const Node& node = model.nodes[i];
    const PassFlops flops = pass_flops(node.layer, shapes.inputs[i]);
    const bool reads_images_only =
        std::all_of(node.inputs.begin(), node.inputs.end(), [](int source) { return source == kImages; });
    const double data_gradient = reads_images_only ? 0.0 : flops.backward_data;  // never computed for the images
    costs.push_back({flops.forward + flops.backward_weights + data_gradient + kNodeOverheadFlops,
                     param_count(node.layer, shapes.inputs[i]) * int64_t(sizeof(float)),
                     element_count(shapes.outputs[i]) * int64_t(sizeof(float))});
  }
  return costs;
}

std::vector<std::pair<int, int>> stage_ranges(const Partition& partition, int node_count) {
  const std::vector<int>& firsts = partition.first_nodes;
  BATON_CHECK(!firsts.empty() && firsts[0] == 0, "a partition must start its first stage at node 0");
  std::vector<std::pair<int, int>> ranges;
  for (size_t k = 0; k < firsts.size(); ++k) {
    const int last = k + 1 < firsts.size() ? firsts[k + 1] : node_count;
    BATON_CHECK(firsts[k] < last, "stage " << k << " of the partition, from node " << firsts[k] << " to node "
                                           << last << " of " << node_count << ", would be empty");
    ranges.emplace_back(firsts[k], last);
  }
  return ranges;
}

std::vector<int64_t> cut_bytes_per_image(const ModelSpec& model) {
  const int n = static_cast<int>(model.nodes.size());
  const std::vector<NodeCost> costs = node_costs(model);
  std::vector<int64_t> bytes(size_t(n) + 1, 0);
  for (int cut = 1; cut < n; ++cut)
    for (int value : values_entering(model, cut, n))
      if (value != kImages) bytes[size_t(cut)] += costs[size_t(value)].activation_bytes;
  return bytes;
}

Partition balance_stages(const std::vector<NodeCost>& costs, int stages, int64_t max_param_bytes_per_stage,
                         const std::vector<double>& cut_costs) {
  const int n = static_cast<int>(costs.size());
  BATON_CHECK(stages >= 1, "the number of pipeline stages must be at least 1, not " << stages);
  BATON_CHECK(stages <= n, "a model of " << n << " layers cannot be split into " << stages << " stages; use at most "
                                         << n << " stages");
  BATON_CHECK(max_param_bytes_per_stage >= 0, "the parameter memory limit per stage must be a number of bytes, or 0 "
                                              "for none, not "
                                                  << max_param_bytes_per_stage);
  check_costs(costs);
  BATON_CHECK(cut_costs.empty() || (cut_costs.size() == costs.size() + 1 && cut_costs.front() == 0 &&
                                     cut_costs.back() == 0),
              "cut costs must be given for the " << costs.size() + 1 << " cuts of " << costs.size()
                                                 << " nodes, 0 at both ends; got " << cut_costs.size());
  Ranges flops = make_ranges(costs, [](const NodeCost& node) { return node.work; }, max_param_bytes_per_stage);
  flops.cut = cut_costs;
  const double cap = min_max_stage_cost(flops, stages);
  if (cap == kInfeasible) reject_memory_limit(costs, stages, max_param_bytes_per_stage);
  return least_squares_split(flops, stages, cap);
}

Partition parse_partition(const std::string& text, const ModelSpec& model, int stages) {
  const int n = static_cast<int>(model.nodes.size());
  BATON_CHECK(n > 0, "model '" << model.name << "' has no layers to split into stages");
  const std::vector<std::string> entries = partition_entries(text);
  const int listed = static_cast<int>(entries.size());
  BATON_CHECK(stages == -1 || listed == stages - 1,
              "--partition '" << text << "' lists " << listed << " stage boundaries, which make " << listed + 1
                              << " stages, but " << stages << " stages were asked for; list where stages 2 to "
                              << stages << " begin, " << stages - 1 << " entries");
  Partition partition{{0}};
  for (const std::string& entry : entries) {
    const int64_t node = resolve_node(entry, model);
    BATON_CHECK(node >= 1 && node < n, "--partition entry '" << entry << "' is out of range: stages 2 and later begin at "
                                                             << "nodes 1 to " << n - 1 << " of model '" << model.name
                                                             << "', and the first stage always begins at node 0");
    const int previous = partition.first_nodes.back();
    BATON_CHECK(node != previous, "--partition entry '" << entry << "' (node " << node
                                                        << ") repeats the boundary before it, which would leave an "
                                                           "empty stage");
    BATON_CHECK(node > previous, "--partition entries must increase, but '" << entry << "' (node " << node
                                                                            << ") comes after node " << previous);
    partition.first_nodes.push_back(static_cast<int>(node));
  }
  return partition;
}

std::vector<StageLoad> stage_loads(const std::vector<NodeCost>& costs, const Partition& partition) {
  std::vector<StageLoad> loads;
  for (const auto& [first, last] : stage_ranges(partition, static_cast<int>(costs.size()))) {
    StageLoad load{0.0, 0};
    for (int i = first; i < last; ++i) {
      load.work += costs[i].work;
      load.param_bytes += costs[i].param_bytes;
    }
    loads.push_back(load);
  }
  return loads;
}

double load_imbalance(const std::vector<StageLoad>& loads) {
  BATON_CHECK(!loads.empty(), "the imbalance of a partition needs at least one stage");
  double largest = 0, total = 0;
  for (const StageLoad& load : loads) {
    largest = std::max(largest, load.work);
    total += load.work;
  }
  return total > 0 ? largest * static_cast<double>(loads.size()) / total : 1.0;
}

std::vector<NodeCost> measured_costs(const ModelSpec& model, const NetworkOptions& options, int passes) {
  Network net(model, 0, int(model.nodes.size()), options);
  std::vector<double> seconds(model.nodes.size(), 0.0);
  for (int pass = 0; pass <= passes; ++pass) {
    net.measure_nodes(pass > 0 ? &seconds : nullptr);  // the first pass warms caches and primitives
    net.forward(0, Phase::train, uint64_t(pass), net.current_weights());
    net.backward_data(0, net.current_weights(), 1.0f);
    net.backward_weights(0, net.grads().data());
  }
  net.measure_nodes(nullptr);
  std::vector<NodeCost> costs = node_costs(model);
  for (size_t i = 0; i < costs.size(); ++i) costs[i].work = seconds[i] / passes + 1e-7;  // absorbed ReLUs: ~0
  return costs;
}

}  // namespace baton::layers
