// The stage partitioner against a brute-force enumeration of every contiguous split, hand cases,
// the memory limit, ResNet-20 split into 2..8 stages (per-stage FLOPs printed), and --partition
// parsing with each of its error sentences.
#include "layers/partition.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <numeric>
#include <random>

#include "layers/zoo.hpp"
#include "runtime/base/error.hpp"

namespace baton::layers {
namespace {

// Throws unless `action` throws a baton::Error whose message contains `phrase`.
template <class Action>
void expect_error(Action&& action, const std::string& phrase) {
  try {
    action();
  } catch (const Error& error) {
    EXPECT_NE(error.message().find(phrase), std::string::npos) << "missing '" << phrase << "' in: " << error.message();
    return;
  }
  ADD_FAILURE() << "expected a baton::Error saying '" << phrase << "'";
}

std::vector<NodeCost> costs_of(const std::vector<double>& flops, const std::vector<int64_t>& bytes = {}) {
  std::vector<NodeCost> costs;
  for (size_t i = 0; i < flops.size(); ++i) costs.push_back({flops[i], bytes.empty() ? 0 : bytes[i], 0});
  return costs;
}

double max_stage_flops(const std::vector<NodeCost>& costs, const Partition& partition) {
  double largest = 0;
  for (const StageLoad& load : stage_loads(costs, partition)) largest = std::max(largest, load.work);
  return largest;
}

double squared_stage_flops(const std::vector<NodeCost>& costs, const Partition& partition) {
  double total = 0;
  for (const StageLoad& load : stage_loads(costs, partition)) total += load.work * load.work;
  return total;
}

// Every split of the nodes into `stages` non-empty contiguous stages whose parameter bytes fit.
std::vector<Partition> all_splits(const std::vector<NodeCost>& costs, int stages, int64_t byte_limit) {
  std::vector<Partition> splits;
  std::function<void(Partition)> extend = [&](Partition partial) {
    if (static_cast<int>(partial.first_nodes.size()) == stages) {
      for (const StageLoad& load : stage_loads(costs, partial)) {
        if (byte_limit > 0 && load.param_bytes > byte_limit) return;
      }
      splits.push_back(partial);
      return;
    }
    for (int next = partial.first_nodes.back() + 1; next < static_cast<int>(costs.size()); ++next) {
      Partition longer = partial;
      longer.first_nodes.push_back(next);
      extend(longer);
    }
  };
  extend(Partition{{0}});
  return splits;
}

std::vector<NodeCost> random_costs(std::mt19937& random, int n) {
  std::vector<NodeCost> costs;
  for (int i = 0; i < n; ++i) {
    const bool free_layer = random() % 3 == 0;  // whole numbers keep every sum exact
    costs.push_back({free_layer ? 0.0 : double(random() % 50), int64_t(random() % 4) * 10, 0});
  }
  return costs;
}

TEST(PartitionBalance, MatchesBruteForceOnRandomCosts) {
  std::mt19937 random(20240611);
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 1 + int(random() % 10);
    const int stages = 1 + int(random() % std::min(5, n));
    const std::vector<NodeCost> costs = random_costs(random, n);
    const int64_t limit = trial % 2 == 0 ? 0 : 10 + int64_t(random() % 6) * 10;
    const std::vector<Partition> splits = all_splits(costs, stages, limit);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + std::to_string(n) + " nodes, " + std::to_string(stages) +
                 " stages, limit " + std::to_string(limit));
    if (splits.empty()) {
      expect_error([&] { balance_stages(costs, stages, limit); }, "bytes");
      continue;
    }
    double best_max = 1e300;
    for (const Partition& split : splits) best_max = std::min(best_max, max_stage_flops(costs, split));
    double best_squares = 1e300;
    for (const Partition& split : splits) {
      if (max_stage_flops(costs, split) == best_max) best_squares = std::min(best_squares, squared_stage_flops(costs, split));
    }
    const Partition found = balance_stages(costs, stages, limit);
    ASSERT_EQ(found.first_nodes.size(), size_t(stages));
    EXPECT_EQ(max_stage_flops(costs, found), best_max);
    EXPECT_EQ(squared_stage_flops(costs, found), best_squares);
    for (const StageLoad& load : stage_loads(costs, found)) {
      EXPECT_TRUE(limit == 0 || load.param_bytes <= limit) << load.param_bytes << " bytes over " << limit;
    }
  }
}

int node_named(const ModelSpec& model, const std::string& name) {
  for (size_t i = 0; i < model.nodes.size(); ++i) {
    if (model.nodes[i].name == name) return static_cast<int>(i);
  }
  ADD_FAILURE() << "no node " << name;
  return -1;
}

// Stage costs with cut costs: each stage's work plus the cost of each of its boundaries.
std::vector<double> stage_costs_with_cuts(const std::vector<NodeCost>& costs, const Partition& partition,
                                          const std::vector<double>& cuts) {
  std::vector<double> stage_costs;
  for (const auto& [first, last] : stage_ranges(partition, int(costs.size()))) {
    double cost = cuts[size_t(first)] + cuts[size_t(last)];
    for (int i = first; i < last; ++i) cost += costs[size_t(i)].work;
    stage_costs.push_back(cost);
  }
  return stage_costs;
}

TEST(PartitionBalance, WithCutCostsMatchesBruteForceOnRandomCosts) {
  std::mt19937 random(20261202);
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 1 + int(random() % 10);
    const int stages = 1 + int(random() % std::min(5, n));
    const std::vector<NodeCost> costs = random_costs(random, n);
    std::vector<double> cuts(size_t(n) + 1, 0.0);
    for (int c = 1; c < n; ++c) cuts[size_t(c)] = double(random() % 40);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + std::to_string(n) + " nodes, " + std::to_string(stages) +
                 " stages");
    double best_max = 1e300, best_squares = 1e300;
    for (const Partition& split : all_splits(costs, stages, 0)) {
      const std::vector<double> c = stage_costs_with_cuts(costs, split, cuts);
      best_max = std::min(best_max, *std::max_element(c.begin(), c.end()));
    }
    for (const Partition& split : all_splits(costs, stages, 0)) {
      const std::vector<double> c = stage_costs_with_cuts(costs, split, cuts);
      if (*std::max_element(c.begin(), c.end()) == best_max)
        best_squares = std::min(best_squares, std::inner_product(c.begin(), c.end(), c.begin(), 0.0));
    }
    const std::vector<double> found = stage_costs_with_cuts(costs, balance_stages(costs, stages, 0, cuts), cuts);
    EXPECT_EQ(*std::max_element(found.begin(), found.end()), best_max);
    EXPECT_EQ(std::inner_product(found.begin(), found.end(), found.begin(), 0.0), best_squares);
  }
}

TEST(PartitionBalance, CutCostsMoveAResNetCutOutOfAResidualBlock) {
  const ModelSpec model = build_model("resnet56", {3, 32, 32}, 10);
  const std::vector<NodeCost> costs = node_costs(model);
  const std::vector<int64_t> bytes = cut_bytes_per_image(model);
  ASSERT_EQ(bytes.size(), costs.size() + 1);
  EXPECT_EQ(bytes.front(), 0);
  EXPECT_EQ(bytes.back(), 0);
  // Inside a block the skip crosses with the branch: twice a block boundary's bytes.
  const int inside = node_named(model, "layer2.3.conv2"), boundary = node_named(model, "layer2.4.conv1");
  EXPECT_EQ(bytes[size_t(inside)], 2 * bytes[size_t(boundary)]);
  const double flops_per_byte = 3e3;  // sending a byte costs as much as this much work
  std::vector<double> cuts;
  for (int64_t b : bytes) cuts.push_back(double(b) * flops_per_byte);
  const Partition plain = balance_stages(costs, 2), aware = balance_stages(costs, 2, 0, cuts);
  const int plain_cut = plain.first_nodes[1], aware_cut = aware.first_nodes[1];
  std::printf("resnet56 in 2 stages: by FLOPs at %s (%lld bytes per image cross), with cut costs at %s (%lld)\n",
              model.nodes[size_t(plain_cut)].name.c_str(), static_cast<long long>(bytes[size_t(plain_cut)]),
              model.nodes[size_t(aware_cut)].name.c_str(), static_cast<long long>(bytes[size_t(aware_cut)]));
  EXPECT_LT(bytes[size_t(aware_cut)], bytes[size_t(plain_cut)]);
  const std::vector<double> c = stage_costs_with_cuts(costs, aware, cuts);
  const std::vector<double> p = stage_costs_with_cuts(costs, plain, cuts);
  EXPECT_LE(*std::max_element(c.begin(), c.end()), *std::max_element(p.begin(), p.end()));
}

TEST(PartitionBalance, UniformCostsSplitEvenlyWithLaterStagesLonger) {
  EXPECT_EQ(balance_stages(costs_of(std::vector<double>(12, 5.0)), 4).first_nodes, (std::vector<int>{0, 3, 6, 9}));
  EXPECT_EQ(balance_stages(costs_of(std::vector<double>(10, 5.0)), 4).first_nodes, (std::vector<int>{0, 2, 4, 7}));
}

TEST(PartitionBalance, HugeNodeGetsItsOwnStage) {
  const std::vector<NodeCost> costs = costs_of({1, 1, 1, 100, 1, 1, 1});
  EXPECT_EQ(balance_stages(costs, 3).first_nodes, (std::vector<int>{0, 3, 4}));
}

TEST(PartitionBalance, OneStageAndOneNodePerStage) {
  const std::vector<NodeCost> costs = costs_of({4, 0, 7, 1, 3});
  EXPECT_EQ(balance_stages(costs, 1).first_nodes, (std::vector<int>{0}));
  EXPECT_EQ(balance_stages(costs, 5).first_nodes, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(PartitionBalance, RejectsStageCountsThatCannotWork) {
  const std::vector<NodeCost> costs = costs_of({4, 0, 7, 1, 3});
  expect_error([&] { balance_stages(costs, 6); },
               "a model of 5 layers cannot be split into 6 stages; use at most 5 stages");
  expect_error([&] { balance_stages(costs, 0); }, "at least 1, not 0");
  expect_error([&] { balance_stages(costs_of({1, -2}), 1); }, "node 1 has a negative or non-finite cost");
}

TEST(PartitionBalance, MemoryLimitMovesTheSplit) {
  const std::vector<NodeCost> costs = costs_of({1, 1, 1, 1, 1, 1}, {0, 0, 0, 0, 30, 30});
  EXPECT_EQ(balance_stages(costs, 2).first_nodes, (std::vector<int>{0, 3}));
  const Partition limited = balance_stages(costs, 2, 30);
  EXPECT_EQ(limited.first_nodes, (std::vector<int>{0, 5}));
  for (const StageLoad& load : stage_loads(costs, limited)) EXPECT_LE(load.param_bytes, 30);
}

TEST(PartitionBalance, InfeasibleMemoryLimitSaysWhatWouldWork) {
  const std::vector<NodeCost> costs = costs_of({1, 1, 1, 1}, {10, 10, 10, 0});
  expect_error([&] { balance_stages(costs, 2, 15); },
               "cannot be split into 2 stages of at most 15 bytes each; the smallest limit that works with 2 "
               "stages is 20 bytes");
  expect_error([&] { balance_stages(costs, 3, 5); }, "node 0 alone has 10 bytes of parameters");
  EXPECT_NO_THROW(balance_stages(costs, 2, 20));
}

TEST(PartitionBalance, SameInputSameAnswer) {
  std::mt19937 random(7);
  std::vector<NodeCost> costs;
  for (int i = 0; i < 300; ++i) costs.push_back({double(random() % 3), 0, 0});  // many ties
  const Partition first = balance_stages(costs, 17);
  const std::vector<NodeCost> copy = costs;
  for (int repeat = 0; repeat < 3; ++repeat) EXPECT_EQ(balance_stages(copy, 17).first_nodes, first.first_nodes);
}

TEST(PartitionBalance, TwoThousandNodesInSixtyFourStages) {  // the largest size the trainer may ask for
  std::mt19937 random(11);
  std::vector<NodeCost> costs;
  for (int i = 0; i < 2000; ++i) costs.push_back({double(1 + random() % 1000) * 1e4, int64_t(random() % 100), 0});
  costs[1000].work = 1e12;  // dwarfs the rest together, so it must be alone in its stage
  const Partition partition = balance_stages(costs, 64, 2000);
  ASSERT_EQ(partition.first_nodes.size(), 64u);
  EXPECT_NEAR(max_stage_flops(costs, partition), 1e12, 1e3);
  EXPECT_TRUE(std::count(partition.first_nodes.begin(), partition.first_nodes.end(), 1000) == 1 &&
              std::count(partition.first_nodes.begin(), partition.first_nodes.end(), 1001) == 1);
  for (const StageLoad& load : stage_loads(costs, partition)) EXPECT_LE(load.param_bytes, 2000);
}

TEST(PartitionResnet20, BalancedIntoTwoToEightStages) {
  const ModelSpec model = build_model("resnet20", {3, 32, 32}, 10);
  const std::vector<NodeCost> costs = node_costs(model);
  const double total = std::accumulate(costs.begin(), costs.end(), 0.0,
                                       [](double sum, const NodeCost& node) { return sum + node.work; });
  const double largest_node = std::max_element(costs.begin(), costs.end(), [](const NodeCost& a, const NodeCost& b) {
                                return a.work < b.work;
                              })->work;
  for (int stages = 2; stages <= 8; ++stages) {
    const Partition partition = balance_stages(costs, stages);
    const std::vector<StageLoad> loads = stage_loads(costs, partition);
    std::printf("resnet20 in %d stages, max/mean %.3f:", stages, load_imbalance(loads));
    for (size_t k = 0; k < loads.size(); ++k) {
      std::printf(" [%s] %.1fM", model.nodes[partition.first_nodes[k]].name.c_str(), loads[k].work / 1e6);
    }
    std::printf("\n");
    // The optimum is never worse than the mean plus one node (a greedy split achieves that).
    EXPECT_LE(max_stage_flops(costs, partition), total / stages + largest_node);
    EXPECT_LT(load_imbalance(loads), 1.4);
  }
}

TEST(PartitionCosts, TotalsMatchTheModel) {
  const ModelSpec model = build_model("resnet20", {3, 32, 32}, 10);
  const std::vector<NodeCost> costs = node_costs(model);
  ASSERT_EQ(costs.size(), model.nodes.size());
  double flops = 0;
  int64_t bytes = 0;
  for (const NodeCost& node : costs) {
    flops += node.work;
    bytes += node.param_bytes;
    EXPECT_GE(node.work, kNodeOverheadFlops);
  }
  const double expected = training_flops_per_image(model) + kNodeOverheadFlops * double(costs.size());
  EXPECT_NEAR(flops, expected, expected * 1e-12);
  EXPECT_EQ(bytes, count_params(model) * 4);
  EXPECT_EQ(costs[0].activation_bytes, 16 * 32 * 32 * 4);  // conv1: 16 channels of 32x32
  EXPECT_EQ(costs.back().activation_bytes, 4);              // one loss per image
}

TEST(PartitionLoads, SumToTheTotals) {
  std::mt19937 random(3);
  const std::vector<NodeCost> costs = random_costs(random, 9);
  const Partition partition{{0, 2, 3, 7}};
  const std::vector<StageLoad> loads = stage_loads(costs, partition);
  ASSERT_EQ(loads.size(), 4u);
  double flops = 0, load_flops = 0;
  int64_t bytes = 0, load_bytes = 0;
  for (const NodeCost& node : costs) flops += node.work, bytes += node.param_bytes;
  for (const StageLoad& load : loads) load_flops += load.work, load_bytes += load.param_bytes;
  EXPECT_EQ(load_flops, flops);
  EXPECT_EQ(load_bytes, bytes);
  EXPECT_EQ(loads[1].work, costs[2].work);
  EXPECT_EQ(load_imbalance({{2, 0}, {2, 0}}), 1.0);
  EXPECT_EQ(load_imbalance({{3, 0}, {1, 0}}), 1.5);
  expect_error([&] { stage_loads(costs, Partition{{1, 4}}); }, "first stage at node 0");
  expect_error([&] { stage_loads(costs, Partition{{0, 4, 9}}); }, "stage 2 of the partition");
}

class PartitionParse : public ::testing::Test {
 protected:
  ModelSpec model_ = build_model("resnet20", {3, 32, 32}, 10);
};

TEST_F(PartitionParse, NamesAndIndices) {
  const int layer2 = node_named(model_, "layer2.0.conv1");
  const int layer3 = node_named(model_, "layer3.0.conv1");
  EXPECT_EQ(parse_partition("layer2.0.conv1,layer3.0.conv1", model_, 3).first_nodes,
            (std::vector<int>{0, layer2, layer3}));
  EXPECT_EQ(parse_partition("7,19", model_, 3).first_nodes, (std::vector<int>{0, 7, 19}));
  EXPECT_EQ(parse_partition(" 7 , layer3.0.conv1", model_, -1).first_nodes, (std::vector<int>{0, 7, layer3}));
  EXPECT_EQ(parse_partition("", model_, 1).first_nodes, (std::vector<int>{0}));
  const int last = static_cast<int>(model_.nodes.size()) - 1;
  EXPECT_EQ(parse_partition(std::to_string(last), model_, 2).first_nodes, (std::vector<int>{0, last}));
}

TEST_F(PartitionParse, EachMistakeGetsItsSentence) {
  const std::string n = std::to_string(model_.nodes.size());
  expect_error([&] { parse_partition("layer9.conv", model_, 2); },
               "has no layer named 'layer9.conv'; layer names look like '");
  expect_error([&] { parse_partition("0", model_, 2); }, "out of range: stages 2 and later begin at nodes 1 to");
  expect_error([&] { parse_partition("conv1", model_, 2); }, "first stage always begins at node 0");
  expect_error([&] { parse_partition(n, model_, 2); }, "'" + n + "' is out of range");
  expect_error([&] { parse_partition("-3", model_, 2); }, "'-3' is out of range");
  expect_error([&] { parse_partition("99999999999999999999", model_, 2); }, "is out of range");
  expect_error([&] { parse_partition("19,7", model_, 3); }, "entries must increase, but '7' (node 7) comes after node 19");
  expect_error([&] { parse_partition("7,7", model_, 3); }, "empty stage");
  expect_error([&] { parse_partition("7", model_, 3); },
               "lists 1 stage boundaries, which make 2 stages, but 3 stages were asked for");
  expect_error([&] { parse_partition("7,,19", model_, -1); }, "has an empty entry");
}

}  // namespace
}  // namespace baton::layers
