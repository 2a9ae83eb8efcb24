// baton simulate's predictions against arithmetic done here: a cost profile with chosen times
// (no kernels run), one rank, data parallel with a priced allreduce, a 1F1B pipeline's steady
// state, PipeDream's stash memory, and the profile's interpolation between microbatch sizes.
#include <gtest/gtest.h>

#include "layers/partition.hpp"
#include "layers/zoo.hpp"
#include "runtime/app/simulate.hpp"

namespace baton {
namespace {

layers::ModelSpec lenet5() { return layers::build_model("lenet5", {1, 28, 28}, 10); }

// Node i costs (i + 1) ms forward, 2(i + 1) ms data gradient, 3(i + 1) ms weight gradient per 64
// images (proportional below), 0.5 ms per pass outside the nodes, 1 ns per parameter of optimizer.
CostProfile chosen_profile(const layers::ModelSpec& model) {
  CostProfile p;
  p.model = model.name;
  p.backend = "cpu";
  p.microbatch_sizes = {64};
  std::vector<PassSeconds> nodes;
  for (size_t i = 0; i < model.nodes.size(); ++i) {
    p.node_names.push_back(model.nodes[i].name);
    const double ms = 1e-3 * double(i + 1);
    nodes.push_back({ms, 2 * ms, 3 * ms});
  }
  p.node_seconds = {nodes};
  p.weight_refresh = {std::vector<PassSeconds>(nodes.size())};
  p.outside_nodes = {{5e-4, 5e-4, 5e-4}};
  p.optimizer_seconds_per_param = 1e-9;
  return p;
}

double params_of(const layers::ModelSpec& model, int first, int last) {
  const std::vector<layers::NodeCost> costs = layers::node_costs(model);
  double params = 0;
  for (int i = first; i < last; ++i) params += double(costs[size_t(i)].param_bytes) / sizeof(float);
  return params;
}

// Seconds of nodes [first, last) per microbatch of 64, outside time shared by layer time.
double stage_seconds(const layers::ModelSpec& model, const CostProfile& p, int first, int last) {
  double range = 0, whole = 0;
  for (int i = 0; i < int(model.nodes.size()); ++i) {
    const double t = p.node(i, 64).total();
    whole += t;
    if (i >= first && i < last) range += t;
  }
  return range * (1 + 1.5e-3 / whole) + params_of(model, first, last) * 1e-9;
}

ParallelConfig parallel(int stages, int replicas, const std::string& pipeline, const std::string& dp) {
  ParallelConfig p;
  p.stages = stages;
  p.replicas = replicas;
  p.pipeline = pipeline;
  p.dp = dp;
  return p;
}

TEST(CostProfile, InterpolatesBetweenSizesAndScalesBeyondThem) {
  CostProfile p;
  p.microbatch_sizes = {16, 64};
  p.node_seconds = {{{1, 2, 3}}, {{5, 8, 11}}};
  p.weight_refresh = {{{0.25, 0.5, 0}}, {{0.75, 1, 0}}};
  p.outside_nodes = {{0, 0, 0}, {4, 4, 4}};
  EXPECT_DOUBLE_EQ(p.node(0, 40).forward, 3);
  EXPECT_DOUBLE_EQ(p.node(0, 40).weight_gradient, 7);
  EXPECT_DOUBLE_EQ(p.node(0, 8).data_gradient, 1);    // half of 16's
  EXPECT_DOUBLE_EQ(p.node(0, 128).forward, 10);       // twice 64's
  EXPECT_DOUBLE_EQ(p.outside(40).forward, 2);
  EXPECT_DOUBLE_EQ(p.refresh(0, 8).forward, 0.25);  // the nearest size's, not scaled
  EXPECT_DOUBLE_EQ(p.refresh(0, 48).data_gradient, 1);
}

TEST(Simulate, NewWeightsAreConvertedOncePerUpdateNotPerMicrobatch) {
  const layers::ModelSpec model = lenet5();
  CostProfile profile = chosen_profile(model);
  const CostProfile without = profile;
  for (PassSeconds& r : profile.weight_refresh[0]) r = {2e-3, 1e-3, 0};
  ParallelConfig p = parallel(1, 1, "none", "sync");
  p.microbatches = 4;
  const double a = predict(Scenario{model, without, {}, p, 64, 3}).step_seconds;
  const double b = predict(Scenario{model, profile, {}, p, 64, 3}).step_seconds;
  std::printf("4 microbatches per update: %.9f s, with weight conversions %.9f s\n", a, b);
  EXPECT_NEAR(b - a, double(model.nodes.size()) * 3e-3, 1e-12);
}

TEST(Simulate, OneRankStepIsItsPassesPlusTheOptimizer) {
  const layers::ModelSpec model = lenet5();
  const CostProfile profile = chosen_profile(model);
  const Prediction r = predict(Scenario{model, profile, {}, parallel(1, 1, "none", "sync"), 64, 4});
  const double expected = stage_seconds(model, profile, 0, int(model.nodes.size()));
  std::printf("one rank: predicted %.9f s, by hand %.9f s\n", r.step_seconds, expected);
  EXPECT_NEAR(r.step_seconds, expected, 1e-12);
  EXPECT_NEAR(r.images_per_sec, 64 / expected, 1e-6);
  ASSERT_EQ(r.stages.size(), 1u);
  EXPECT_NEAR(r.stages[0].busy, 1.0, 1e-12);
  EXPECT_NEAR(r.bubble_fraction(), 0.0, 1e-12);
}

TEST(Simulate, SyncAveragingAddsTheRingAllreduceOfTheGradient) {
  const layers::ModelSpec model = lenet5();
  const CostProfile profile = chosen_profile(model);
  schedulers::NetworkModel network;
  network.intra_node = {1e-6, 1e10};
  network.inter_node = {1e-4, 1e8};
  network.ranks_per_node = 2;  // 4 replicas on 2 nodes: the ring crosses the slow link
  network.progress_interval = 0;
  const int n = int(model.nodes.size());
  // Each replica's microbatch is 16 images: passes a quarter of 64's (outside time too).
  const Prediction r = predict(Scenario{model, profile, network, parallel(1, 4, "none", "sync"), 64, 3});
  double passes = 0;
  for (int i = 0; i < n; ++i) passes += profile.node(i, 16).total();
  const double compute = passes + 1.5e-3 / 4 + params_of(model, 0, n) * 1e-9;
  const double bytes = params_of(model, 0, n) * sizeof(float);
  const double allreduce = 2 * 3 * (1e-4 + bytes / 4 / 1e8);
  std::printf("4 replicas: predicted %.9f s, by hand %.9f s (allreduce %.9f s)\n", r.step_seconds,
              compute + allreduce, allreduce);
  EXPECT_NEAR(r.step_seconds, compute + allreduce, 1e-12);
  EXPECT_NEAR(r.communication_fraction(), allreduce / (compute + allreduce), 1e-9);
}

TEST(Simulate, A1F1BPipelineSettlesAtItsSlowestStage) {
  const layers::ModelSpec model = lenet5();
  const CostProfile profile = chosen_profile(model);
  ParallelConfig p = parallel(2, 1, "stale", "sync");
  p.partition = "fc1";  // node 7
  schedulers::NetworkModel free_network;
  free_network.intra_node = {0, 1e30};
  free_network.progress_interval = 0;
  auto run = [&](int64_t iterations) {
    return predict(Scenario{model, profile, free_network, p, 64, iterations}).step_seconds * double(iterations);
  };
  const double steady = (run(200) - run(100)) / 100;
  const int n = int(model.nodes.size());
  const double slowest = std::max(stage_seconds(model, profile, 0, 7), stage_seconds(model, profile, 7, n));
  std::printf("stale, 2 stages: steady step %.9f s, slowest stage %.9f s\n", steady, slowest);
  EXPECT_NEAR(steady, slowest, 1e-9);
  const Prediction r = predict(Scenario{model, profile, free_network, p, 64, 8});
  ASSERT_EQ(r.partition, std::vector<std::string>{"fc1"});
  EXPECT_EQ(r.stages[0].forward_delay, 1);
  EXPECT_EQ(r.stages[1].forward_delay, 0);
}

TEST(Simulate, PipeDreamStashesOneWeightCopyPerExtraMicrobatchInFlight) {
  const layers::ModelSpec model = lenet5();
  const CostProfile profile = chosen_profile(model);
  ParallelConfig stale = parallel(3, 1, "stale", "sync");
  stale.partition = "pool1,fc1";
  ParallelConfig pipedream = stale;
  pipedream.pipeline = "pipedream";
  const Prediction a = predict(Scenario{model, profile, {}, stale, 64, 6});
  const Prediction b = predict(Scenario{model, profile, {}, pipedream, 64, 6});
  // Stage 0 holds 3 microbatches, so 2 stashed versions of its weights; stage 2 none.
  EXPECT_DOUBLE_EQ(b.stages[0].peak_bytes - a.stages[0].peak_bytes, 2 * params_of(model, 0, 3) * sizeof(float));
  EXPECT_DOUBLE_EQ(b.stages[1].peak_bytes - a.stages[1].peak_bytes, 1 * params_of(model, 3, 7) * sizeof(float));
  EXPECT_DOUBLE_EQ(b.stages[2].peak_bytes, a.stages[2].peak_bytes);
}

// Beside training_bytes, a delayed stage holds predict's weights (1 copy), dc's weights per update
// in flight (delay + 1) or local's weights and own gradient (2); a stage without delay none.
TEST(Simulate, PeakMemoryHoldsTheBuffersOfStalenessMitigations) {
  const layers::ModelSpec model = lenet5();
  const CostProfile profile = chosen_profile(model);
  auto peaks = [&](ParallelConfig p, const std::string& staleness) {
    p.staleness = staleness;
    std::vector<double> bytes;
    for (const StagePrediction& s : predict(Scenario{model, profile, {}, p, 64, 6}).stages) bytes.push_back(s.peak_bytes);
    return bytes;
  };
  ParallelConfig stale = parallel(3, 1, "stale", "sync");
  stale.partition = "pool1,fc1";
  const double w0 = params_of(model, 0, 3) * sizeof(float), w1 = params_of(model, 3, 7) * sizeof(float);
  const std::vector<double> none = peaks(stale, "none"), automatic = peaks(stale, "auto"), dc = peaks(stale, "dc");
  EXPECT_DOUBLE_EQ(automatic[0] - none[0], w0);  // auto is predict,warmup at these delays (2, 1, 0)
  EXPECT_DOUBLE_EQ(automatic[1] - none[1], w1);
  EXPECT_DOUBLE_EQ(automatic[2], none[2]);
  EXPECT_DOUBLE_EQ(dc[0] - none[0], 3 * w0);
  EXPECT_DOUBLE_EQ(dc[1] - none[1], 2 * w1);
  const ParallelConfig delayed = parallel(1, 2, "none", "delayed");
  const double w = params_of(model, 0, int(model.nodes.size())) * sizeof(float);
  EXPECT_DOUBLE_EQ(peaks(delayed, "local")[0] - peaks(delayed, "none")[0], 2 * w);
}

TEST(Simulate, ReplicasOnOneNodeShareItsCores) {
  const layers::ModelSpec model = lenet5();
  const CostProfile profile = chosen_profile(model);
  schedulers::NetworkModel network;
  network.intra_node = {1e-6, 1e10};
  network.ranks_per_node = 2;
  network.progress_interval = 0;
  auto step = [&](double cores) {
    network.cores_per_node = cores;
    return predict(Scenario{model, profile, network, parallel(1, 2, "none", "sync"), 128, 3}).step_seconds;
  };
  // Each replica computes 64 images; with one core for both, its passes and optimizer take twice
  // as long and the allreduce no longer.
  const double compute = stage_seconds(model, profile, 0, int(model.nodes.size()));
  std::printf("2 replicas on one node: %.9f s with 2 cores, %.9f s with 1, passes and optimizer %.9f s\n", step(2),
              step(1), compute);
  EXPECT_NEAR(step(1) - step(2), compute, 1e-12);
  EXPECT_DOUBLE_EQ(step(0), step(2));  // unknown cores: a core each
}

TEST(Simulate, AProfileMeasuredOnTooFewCoresIsScaledToFullSpeed) {
  const layers::ModelSpec model = lenet5();
  CostProfile profile = chosen_profile(model);
  profile.ranks = profile.ranks_per_node = 4;  // 4 ranks of 1 thread measured at once on 2 cores: half speed
  profile.cores = 2;
  schedulers::NetworkModel network;
  auto step = [&](double cores) {
    network.cores_per_node = cores;
    return predict(Scenario{model, profile, network, parallel(1, 1, "none", "sync"), 64, 3}).step_seconds;
  };
  const double measured = stage_seconds(model, profile, 0, int(model.nodes.size()));
  std::printf("one rank from a profile at half speed: %.9f s, as measured %.9f s\n", step(2), step(0));
  EXPECT_NEAR(step(2), measured / 2, 1e-12);
  EXPECT_NEAR(step(0), measured, 1e-12);  // no core sharing simulated: the times as measured
}

}  // namespace
}  // namespace baton
