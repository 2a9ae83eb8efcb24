// Every training mode run through programs, the executor and in-process links, against a plain
// serial loop written here without the executor: GPipe and synchronous data parallelism against
// sequential training on the whole batch, delayed averaging against W(t+1) = W(t) - lr·avg g(W(t-1)),
// stale and PipeDream pipelines against a loop that keeps each stage's weight history and applies
// the mode's version rule, and the LayerPipe split and the other averagings against their twins.
// On the kernels of BATON_TEST_BACKEND (cpu unless set; the GPU check sets cuda).
#include <gtest/gtest.h>

#include "layers/partition.hpp"
#include "layers/zoo.hpp"
#include "runtime/app/local_run.hpp"
#include "runtime/app/parallel_plan.hpp"
#include "runtime/base/rng.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/fixed_source.hpp"

namespace baton {
namespace {

using layers::ModelSpec;
using layers::Network;
using test::close;

constexpr int64_t kBatch = 8;
constexpr int64_t kSteps = 6;
constexpr float kLr = 0.05f;
constexpr float kDcLambda = 0.5f;  // large enough that its term changes the weights visibly
constexpr int64_t kStalenessWarmup = 4;  // updates over which --staleness warmup ramps (an epoch in a run)

using FixedSource = test::FixedSource;

WorkerOptions worker_options() {
  WorkerOptions o;
  o.network = layers::NetworkOptions{test::mode_backend(), 1, 1, 5};
  o.sgd = SgdOptions{0.9f, 1e-4f, false};
  o.schedule.base = kLr;
  o.schedule.staleness_warmup_steps = kStalenessWarmup;
  return o;
}

struct Outcome {
  std::vector<float> weights;  // all stages of replica 0, in model order
  double loss = 0;             // summed over the epoch
};

Outcome run_mode(const ModelSpec& model, ParallelConfig p, FixedSource& data,
                 std::vector<layers::Backend> stage_backends = {}) {
  p.dc_lambda = kDcLambda;
  RunPlan plan = plan_run(model, p, kBatch, 1, layers::node_costs(model));
  WorkerOptions options = worker_options();
  options.stage_backends = std::move(stage_backends);
  LocalRun run(model, plan, p, options, &data);
  Outcome out;
  out.loss = run.train_segment(Segment{1, 1, 0, kSteps, 0}, nullptr).totals.loss;
  for (int s = 0; s < p.stages; ++s) {
    std::span<float> w = run.worker(s).network().weights();
    out.weights.insert(out.weights.end(), w.begin(), w.end());
  }
  return out;
}

ParallelConfig mode(int stages, int replicas, int microbatches, const std::string& pipeline, const std::string& dp = "sync",
                    bool split = false) {
  ParallelConfig p = test::parallel_config(stages, replicas, pipeline, microbatches, dp, split);
  p.emulate = true;
  return p;
}

// One network per stage (one slot), as the serial loops below use them.
std::vector<std::unique_ptr<Network>> stage_networks(const ModelSpec& model, int stages, int64_t batch) {
  layers::Partition partition = layers::balance_stages(layers::node_costs(model), stages);
  std::vector<std::unique_ptr<Network>> nets;
  for (auto [first, last] : layers::stage_ranges(partition, int(model.nodes.size())))
    nets.push_back(std::make_unique<Network>(model, first, last, layers::NetworkOptions{test::mode_backend(), batch, 1, 5}));
  return nets;
}

// Forward of rows [row, row + batch) of minibatch t through the stages, each with its own weights.
void forward_chain(std::vector<std::unique_ptr<Network>>& nets, const std::vector<layers::ParamsView>& weights,
                   const Batch& batch, int64_t row, uint64_t key) {
  Network& first = *nets.front();
  const int64_t per_image = first.input(0, 0).numel() / first.batch();
  std::copy_n(batch.images.begin() + row * per_image, first.input(0, 0).numel(), first.input(0, 0).data());
  std::copy_n(batch.labels.begin() + row, nets.back()->batch(), nets.back()->labels(0));
  for (size_t s = 0; s < nets.size(); ++s) {
    nets[s]->forward(0, layers::Phase::train, key, weights[s]);
    if (s + 1 == nets.size()) break;
    for (size_t i = 0; i < nets[s]->leaving().size(); ++i) {
      const Tensor& out = nets[s]->output(0, i);
      std::copy(out.data(), out.data() + out.numel(), nets[s + 1]->input(0, i).data());
    }
  }
}

void backward_chain(std::vector<std::unique_ptr<Network>>& nets, const std::vector<layers::ParamsView>& weights,
                    float loss_scale) {
  for (size_t s = nets.size(); s-- > 0;) {
    nets[s]->backward_data(0, weights[s], loss_scale);
    nets[s]->backward_weights(0, nets[s]->grads().data());
    if (s == 0) break;
    for (size_t i = 0; i < nets[s]->entering().size(); ++i) {
      const Tensor& g = nets[s]->input_grad(0, i);
      std::copy(g.data(), g.data() + g.numel(), nets[s - 1]->output_grad(0, i).data());
    }
  }
}

uint64_t worker_key(int64_t microbatch, int replica) {
  return mix_keys(mix_keys(1, uint64_t(microbatch)), uint64_t(replica));
}

// Sequential training on the whole minibatch, one network, plain SGD steps.
Outcome sequential_loop(const ModelSpec& model, FixedSource& data) {
  auto nets = stage_networks(model, 1, kBatch);
  Network& net = *nets[0];
  Sgd sgd(size_t(net.param_count()), worker_options().sgd);
  Outcome out;
  for (int64_t t = 0; t < kSteps; ++t) {
    net.zero_grads();
    forward_chain(nets, {net.current_weights()}, data.at(t), 0, worker_key(t, 0));
    out.loss += net.loss_sum(0, kBatch);
    backward_chain(nets, {net.current_weights()}, 1.0f / float(kBatch));
    sgd.step(net.weights(), net.grads(), kLr);
    net.weights_changed();
  }
  out.weights.assign(net.weights().begin(), net.weights().end());
  return out;
}

// Stale and PipeDream pipelines as a loop over minibatches with each stage's weight history:
// stage s computes minibatch t's forward on version v = max(0, t - (K - 1 - s)) and its backward on
// version t (stale) or the forward's (PipeDream), then applies update t to its newest weights.
// Mitigations of a stage with delay d = K - 1 - s: lr-scale lr / (1 + d); momentum mu - d / (1 + d);
// predict: a pass t - v > 0 behind uses W(v) - (t - v) * lr * velocity(v); dc: the gradient g is
// applied as g + lambda * g * g * (W(t) - W_then), W_then the weights its forward used; warmup: the
// rate of update t < kStalenessWarmup is multiplied by (t + 1) / kStalenessWarmup. With lag 2 it is the lock step (layerpipe): d = 2(K - 1 - s).
Outcome pipeline_loop(const ModelSpec& model, int stages, bool stash, FixedSource& data, Mitigations m = {},
                      int lag = 1) {
  auto nets = stage_networks(model, stages, kBatch);
  std::vector<std::vector<std::vector<float>>> history(static_cast<size_t>(stages)), velocities(history);
  std::vector<Sgd> sgd;
  std::vector<float> lr;
  for (int s = 0; s < stages; ++s) {
    const int delay = lag * (stages - 1 - s);
    SgdOptions options = worker_options().sgd;
    if (m.momentum) options.momentum = std::max(0.0f, options.momentum - float(delay) / float(1 + delay));
    sgd.emplace_back(size_t(nets[size_t(s)]->param_count()), options);
    lr.push_back(m.lr_scale ? kLr * (1.0f / float(1 + delay)) : kLr);  // as the runtime scales it
    history[size_t(s)].emplace_back(nets[size_t(s)]->weights().begin(), nets[size_t(s)]->weights().end());
    velocities[size_t(s)].emplace_back(sgd.back().velocity().begin(), sgd.back().velocity().end());
  }
  auto rate = [&](int s, int64_t t) {  // as the runtime ramps it
    const bool ramps = m.warmup && s + 1 < stages && t < kStalenessWarmup;
    return ramps ? lr[size_t(s)] * float(t + 1) / float(kStalenessWarmup) : lr[size_t(s)];
  };
  std::vector<std::vector<float>> predicted(static_cast<size_t>(stages));
  auto pass_view = [&](int s, int64_t t, int64_t v) {
    const std::vector<float>& w = history[size_t(s)][size_t(v)];
    if (!m.predict || t == v) return layers::ParamsView{w.data(), uint64_t(1000 * s + v + 1)};
    const float step = float(t - v) * rate(s, t);
    const std::vector<float>& velocity = velocities[size_t(s)][size_t(v)];
    predicted[size_t(s)].resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) predicted[size_t(s)][i] = w[i] - step * velocity[i];
    return layers::ParamsView{predicted[size_t(s)].data(), uint64_t(100000 * (s + 1) + t)};
  };
  Outcome out;
  for (int64_t t = 0; t < kSteps; ++t) {
    std::vector<layers::ParamsView> forward_weights, backward_weights;
    for (int s = 0; s < stages; ++s) {
      const int64_t v = std::max<int64_t>(0, t - lag * (stages - 1 - s));
      forward_weights.push_back(pass_view(s, t, v));
      backward_weights.push_back(stash ? forward_weights.back() : pass_view(s, t, t));
      nets[size_t(s)]->zero_grads();
    }
    forward_chain(nets, forward_weights, data.at(t), 0, worker_key(t, 0));
    out.loss += nets.back()->loss_sum(0, kBatch);
    backward_chain(nets, backward_weights, 1.0f / float(kBatch));
    for (int s = 0; s < stages; ++s) {
      std::vector<float> next = history[size_t(s)].back();
      std::span<float> g = nets[size_t(s)]->grads();
      if (m.dc && s + 1 < stages)
        for (size_t i = 0; i < g.size(); ++i)
          g[i] += kDcLambda * g[i] * g[i] * (next[i] - forward_weights[size_t(s)].data[i]);
      sgd[size_t(s)].step(next, g, rate(s, t));
      history[size_t(s)].push_back(std::move(next));
      velocities[size_t(s)].emplace_back(sgd[size_t(s)].velocity().begin(), sgd[size_t(s)].velocity().end());
    }
  }
  for (auto& h : history) out.weights.insert(out.weights.end(), h.back().begin(), h.back().end());
  return out;
}

// R replicas, each the mean gradient of its share at weights one update old, averaged in replica
// order: W(t+1) = W(t) - lr * avg g(W(t-1)), the first gradient on W(0) and a final drain.
// Mitigations (delay 1 from the second update on, every mitigation applies to every update):
// lr-scale lr / 2; momentum mu - 1/2; predict: the gradient of t >= 1 is taken at W - lr * velocity;
// local: replica r's gradient of t >= 1 is taken at the weights an SGD step with its own gradient of
// t - 1 would give; dc: the average g taken at W_then is applied as g + lambda * g * g * (W_now - W_then).
Outcome delayed_loop(const ModelSpec& model, int replicas, FixedSource& data, Mitigations m = {}) {
  std::vector<std::vector<std::unique_ptr<Network>>> nets;
  for (int r = 0; r < replicas; ++r) nets.push_back(stage_networks(model, 1, kBatch / replicas));
  const size_t n = size_t(nets[0][0]->param_count());
  std::vector<float> weights(nets[0][0]->weights().begin(), nets[0][0]->weights().end());
  SgdOptions options = worker_options().sgd;
  if (m.momentum) options.momentum -= 0.5f;
  Sgd sgd(n, options);
  const float lr = m.lr_scale ? kLr / 2 : kLr;
  auto rate = [&](int64_t u) { return m.warmup && u < kStalenessWarmup ? lr * float(u + 1) / float(kStalenessWarmup) : lr; };
  std::vector<float> pending, pending_at;  // the averaged gradient not yet applied, and where it was taken
  std::vector<std::vector<float>> own{size_t(replicas)};  // local: each replica's newest gradient
  Outcome out;
  auto apply = [&](std::vector<float>& g, int64_t u) {
    if (m.dc)
      for (size_t i = 0; i < n; ++i) g[i] += kDcLambda * g[i] * g[i] * (weights[i] - pending_at[i]);
    sgd.step(weights, g, rate(u));
  };
  for (int64_t t = 0; t < kSteps; ++t) {
    std::vector<float> at = weights;
    if (m.predict && t > 0)
      for (size_t i = 0; i < n; ++i) at[i] = weights[i] - rate(t) * sgd.velocity()[i];
    std::vector<float> average(n, 0.0f);
    for (int r = 0; r < replicas; ++r) {
      Network& net = *nets[size_t(r)][0];
      net.zero_grads();
      std::vector<float> replica_at = at;
      if (m.local && t > 0) {
        Sgd next = sgd;
        next.step(replica_at, own[size_t(r)], rate(t - 1));
      }
      layers::ParamsView view{replica_at.data(), uint64_t(t + 1)};
      forward_chain(nets[size_t(r)], {view}, data.at(t), r * (kBatch / replicas), worker_key(t, r));
      out.loss += net.loss_sum(0, net.batch());  // every replica's, as the run totals them
      backward_chain(nets[size_t(r)], {view}, 1.0f / float(net.batch()));
      for (size_t i = 0; i < n; ++i) average[i] = r == 0 ? net.grads()[i] : average[i] + net.grads()[i];
      own[size_t(r)].assign(net.grads().begin(), net.grads().end());
    }
    for (float& a : average) a /= float(replicas);
    if (!pending.empty()) apply(pending, t - 1);
    pending = average;
    pending_at = at;
  }
  apply(pending, kSteps - 1);
  out.weights = weights;
  return out;
}

class Emulation : public ::testing::Test {
 protected:
  void SetUp() override { BATON_SKIP_UNLESS_AVAILABLE(test::mode_backend()); }
  ModelSpec lenet_ = layers::build_model("lenet5", {1, 28, 28}, 10);
  FixedSource data_{lenet_, kBatch, kSteps};
};

TEST_F(Emulation, GPipeAndZeroBubbleEqualSequentialOnTheWholeBatch) {
  Outcome reference = sequential_loop(lenet_, data_);
  for (const char* pipeline : {"gpipe", "zb"}) {
    for (int stages : {2, 4}) {
      for (int microbatches : {1, 2, 4}) {
        SCOPED_TRACE(std::string(pipeline) + " K=" + std::to_string(stages) + " M=" + std::to_string(microbatches));
        Outcome piped = run_mode(lenet_, mode(stages, 1, microbatches, pipeline), data_);
        EXPECT_TRUE(close("weights", piped.weights, reference.weights, 1e-5));
      }
    }
  }
}

TEST_F(Emulation, DataParallelAveragingEqualsSequentialOnReplicasTimesTheBatch) {
  Outcome reference = sequential_loop(lenet_, data_);
  for (const char* dp : {"sync", "overlap", "sharded"}) {
    for (int replicas : {2, 4}) {
      SCOPED_TRACE(std::string(dp) + " R=" + std::to_string(replicas));
      Outcome parallel = run_mode(lenet_, mode(1, replicas, 1, "none", dp), data_);
      EXPECT_TRUE(close("weights", parallel.weights, reference.weights, 1e-5));
    }
  }
}

TEST_F(Emulation, OverlapAndShardedAreSynchronousAveragingBitwise) {
  for (const char* pipeline : {"none", "gpipe", "stale"}) {
    const int stages = std::string(pipeline) == "none" ? 1 : 2;
    const int microbatches = std::string(pipeline) == "gpipe" ? 2 : 1;
    Outcome sync = run_mode(lenet_, mode(stages, 2, microbatches, pipeline, "sync"), data_);
    for (const char* dp : {"overlap", "sharded"}) {
      Outcome other = run_mode(lenet_, mode(stages, 2, microbatches, pipeline, dp), data_);
      EXPECT_EQ(other.weights, sync.weights) << dp << " with " << pipeline;
      EXPECT_EQ(other.loss, sync.loss);
    }
  }
}

TEST_F(Emulation, DelayedAveragingAppliesEachAverageOneUpdateLate) {
  for (int replicas : {1, 2}) {
    SCOPED_TRACE("delayed R=" + std::to_string(replicas));
    Outcome reference = delayed_loop(lenet_, replicas, data_);
    Outcome delayed = run_mode(lenet_, mode(1, replicas, 1, "none", "delayed"), data_);
    EXPECT_TRUE(close("weights", delayed.weights, reference.weights, 0.0));
    EXPECT_EQ(delayed.weights, reference.weights);
  }
}

TEST_F(Emulation, StaleAndPipeDreamFollowTheirWeightVersionRules) {
  for (int stages : {2, 4}) {
    for (bool stash : {false, true}) {
      SCOPED_TRACE(std::string(stash ? "pipedream" : "stale") + " K=" + std::to_string(stages));
      Outcome reference = pipeline_loop(lenet_, stages, stash, data_);
      Outcome piped = run_mode(lenet_, mode(stages, 1, 1, stash ? "pipedream" : "stale"), data_);
      EXPECT_TRUE(close("weights", piped.weights, reference.weights, 0.0));
      EXPECT_EQ(piped.weights, reference.weights);
      EXPECT_EQ(piped.loss, reference.loss);
    }
  }
}

ParallelConfig mitigated(ParallelConfig p, const Mitigations& m) {
  p.staleness = to_string(m);
  return p;
}

const std::vector<Mitigations> kPipelineMitigations = {
    {.lr_scale = true}, {.momentum = true}, {.predict = true}, {.dc = true}, {.warmup = true},
    {.lr_scale = true, .predict = true, .dc = true}, {.lr_scale = true, .predict = true, .warmup = true}};

TEST_F(Emulation, LockStepForwardsSeeWeightsTwiceAsOldAsStale) {
  for (int stages : {2, 3}) {  // 3: stage 0's forwards 4 updates behind, within the 6 updates run
    SCOPED_TRACE("layerpipe K=" + std::to_string(stages));
    for (const Mitigations& m : {Mitigations{}, Mitigations{.lr_scale = true, .predict = true}}) {
      SCOPED_TRACE("--staleness " + to_string(m));
      Outcome reference = pipeline_loop(lenet_, stages, false, data_, m, 2);
      ParallelConfig p = mode(stages, 1, 1, "layerpipe");
      p.staleness = to_string(m);
      Outcome piped = run_mode(lenet_, p, data_);
      EXPECT_TRUE(close("weights", piped.weights, reference.weights, 0.0));
      EXPECT_EQ(piped.weights, reference.weights);
      EXPECT_EQ(piped.loss, reference.loss);
    }
  }
}

TEST_F(Emulation, PipelineStalenessMitigationsFollowTheirFormulas) {
  for (bool stash : {false, true}) {
    const Outcome unmitigated = pipeline_loop(lenet_, 4, stash, data_);
    for (const Mitigations& m : kPipelineMitigations) {
      SCOPED_TRACE(std::string(stash ? "pipedream" : "stale") + " K=4 --staleness " + to_string(m));
      Outcome reference = pipeline_loop(lenet_, 4, stash, data_, m);
      Outcome piped = run_mode(lenet_, mitigated(mode(4, 1, 1, stash ? "pipedream" : "stale"), m), data_);
      EXPECT_TRUE(close("weights", piped.weights, reference.weights, 0.0));
      EXPECT_EQ(piped.loss, reference.loss);
      EXPECT_FALSE(close("weights", reference.weights, unmitigated.weights, 1e-6)) << "the mitigation changed nothing";
    }
  }
}

TEST_F(Emulation, DelayedAveragingMitigationsFollowTheirFormulas) {
  const Outcome unmitigated = delayed_loop(lenet_, 2, data_);
  for (const Mitigations& m : std::vector<Mitigations>{{.lr_scale = true}, {.momentum = true}, {.predict = true},
                                                       {.local = true}, {.momentum = true, .local = true},
                                                       {.dc = true}, {.predict = true, .dc = true}, {.warmup = true},
                                                       {.local = true, .warmup = true}}) {
    SCOPED_TRACE("delayed R=2 --staleness " + to_string(m));
    Outcome reference = delayed_loop(lenet_, 2, data_, m);
    Outcome delayed = run_mode(lenet_, mitigated(mode(1, 2, 1, "none", "delayed"), m), data_);
    EXPECT_TRUE(close("weights", delayed.weights, reference.weights, 0.0));
    EXPECT_EQ(delayed.loss, reference.loss);
    EXPECT_FALSE(close("weights", reference.weights, unmitigated.weights, 1e-6)) << "the mitigation changed nothing";
  }
}

// auto: predict,warmup on a pipeline's delayed stages, with lr-scale too when one of them is more
// than 3 updates behind (the lock step at K = 3: 4 and 2); local for delayed averaging.
TEST_F(Emulation, AutoStalenessIsPredictWarmupPlusLrScaleBeyondDelay3ForPipelinesAndLocalForDelayedAveraging) {
  ParallelConfig stale = mode(4, 1, 1, "stale"), lock_step = mode(3, 1, 1, "layerpipe");
  ParallelConfig delayed = mode(1, 2, 1, "none", "delayed");
  stale.staleness = lock_step.staleness = delayed.staleness = "auto";
  EXPECT_EQ(run_mode(lenet_, stale, data_).weights,
            pipeline_loop(lenet_, 4, false, data_, {.predict = true, .warmup = true}).weights);
  EXPECT_EQ(run_mode(lenet_, lock_step, data_).weights,
            pipeline_loop(lenet_, 3, false, data_, {.lr_scale = true, .predict = true, .warmup = true}, 2).weights);
  EXPECT_EQ(run_mode(lenet_, delayed, data_).weights,
            delayed_loop(lenet_, 2, data_, {.local = true}).weights);
}

TEST_F(Emulation, StalePipelineAcrossAResidualSkipMatchesItsLoop) {
  ModelSpec resnet = layers::build_model("resnet20", {3, 16, 16}, 10);
  FixedSource data(resnet, kBatch, kSteps);
  Outcome reference = pipeline_loop(resnet, 3, false, data);
  Outcome piped = run_mode(resnet, mode(3, 1, 1, "stale"), data);
  EXPECT_TRUE(close("weights", piped.weights, reference.weights, 0.0));
}

TEST_F(Emulation, SplitBackwardIsTheUnsplitScheduleBitwise) {
  for (const char* pipeline : {"gpipe", "pipedream", "stale"}) {
    const int microbatches = std::string(pipeline) == "gpipe" ? 4 : 1;
    Outcome unsplit = run_mode(lenet_, mode(4, 2, microbatches, pipeline), data_);
    Outcome split = run_mode(lenet_, mode(4, 2, microbatches, pipeline, "sync", true), data_);
    EXPECT_EQ(split.weights, unsplit.weights) << pipeline;
    EXPECT_EQ(split.loss, unsplit.loss) << pipeline;
  }
}

// --stage-backends: each stage on its own kernels, tensors crossing as plain NCHW, trains like one
// backend within round-off. Without a GPU the reference kernels stand in for the other backend.
TEST_F(Emulation, MixedBackendPipelineTrainsLikeOneBackend) {
  using layers::Backend;
  const Backend other = test::unavailable(Backend::cuda).empty() && test::mode_backend() != Backend::cuda
                            ? Backend::cuda
                            : Backend::reference;
  const Backend mine = test::mode_backend();
  const ParallelConfig p = mode(2, 1, 2, "gpipe");
  const Outcome one = run_mode(lenet_, p, data_);
  for (const std::vector<Backend>& mix : {std::vector<Backend>{other, mine}, std::vector<Backend>{mine, other}}) {
    SCOPED_TRACE(std::string(layers::backend_name(mix[0])) + "," + layers::backend_name(mix[1]));
    const Outcome mixed = run_mode(lenet_, p, data_, mix);
    const test::DiffStats diff = test::compare("weights, mixed against one backend", mixed.weights, one.weights);
    EXPECT_TRUE(diff.same_size);
    EXPECT_GT(diff.max_abs, 0.0) << "the second backend's stage did not run on its own kernels";
    EXPECT_LE(diff.max_abs, 1e-4 * diff.scale);
    EXPECT_NEAR(mixed.loss, one.loss, 1e-5 * std::abs(one.loss));
  }
}

}  // namespace
}  // namespace baton
