// The network runner: every zoo model on each backend's kernels (oneDNN; cuDNN where a GPU is)
// against the same model on the reference kernels (loss, every weight gradient, running
// statistics), gradients against finite differences, and a split model against the whole.
#include <gtest/gtest.h>

#include <cmath>

#include "layers/network.hpp"
#include "layers/zoo.hpp"
#include "runtime/base/rng.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/compare.hpp"

namespace baton::layers {
namespace {

using test::close;
using test::close_in_l2;
using test::random_values;

// Fills slot 0's images (first stage) and labels (last stage) deterministically.
void load_inputs(Network& net, const ModelSpec& model, uint64_t key) {
  if (net.entering().front() == kImages) {
    Tensor& images = net.input(0, 0);
    std::vector<float> values = random_values(images.numel(), key);
    std::copy(values.begin(), values.end(), images.data());
  }
  if (!net.has_loss()) return;
  for (int64_t n = 0; n < net.batch(); ++n) net.labels(0)[n] = int32_t((n * 3 + key) % model.classes);
}

struct StepResult {
  double loss;
  std::vector<float> grads, state;
};

StepResult train_pass(Network& net, const ModelSpec& model) {
  load_inputs(net, model, 11);
  net.zero_grads();
  net.forward(0, Phase::train, 5, net.current_weights());
  net.backward_data(0, net.current_weights(), 1.0f / float(net.batch()));
  net.backward_weights(0, net.grads().data());
  return {net.loss_sum(0, net.batch()), {net.grads().begin(), net.grads().end()}, {net.state().begin(), net.state().end()}};
}

struct ZooCase {
  std::string model;
  Dims input;
  int64_t batch;
  double grad_l2 = 1e-3;   // per gradient tensor
  double state = 1e-5;     // running statistics, relative to their scale
  Backend backend = Backend::cpu;
};

std::string zoo_case_name(const ZooCase& c) { return std::string(backend_name(c.backend)) + "_" + c.model; }
void PrintTo(const ZooCase& c, std::ostream* out) { *out << zoo_case_name(c); }

class ZooNetwork : public ::testing::TestWithParam<ZooCase> {};

// Whole networks agree less tightly than single layers: round-off moves a ReLU input that lies
// within ~1e-7 of zero to the other side in one backend, which routes one element's gradient
// differently, and batch norms over few values amplify round-off. So gradients are compared in
// relative L2 per tensor, where a wrong kernel or a wrong fork sum shows as O(1). The CIFAR
// models agree to ~1e-5; the ImageNet ResNets, with 12 values per channel in their last stage
// and 17-53 batch norms in a row, to ~3e-2 (ResNet-50), so they only get a wiring check here —
// their block types are checked tightly in tiny_resnet and the layer tests.
TEST_P(ZooNetwork, KernelsMatchReferenceKernels) {
  const ZooCase& c = GetParam();
  BATON_SKIP_UNLESS_AVAILABLE(c.backend);
  ModelSpec model = build_model(c.model, c.input, 10);
  Network kernels(model, 0, int(model.nodes.size()), {c.backend, c.batch, 1, 3});
  Network ref(model, 0, int(model.nodes.size()), {Backend::reference, c.batch, 1, 3});
  ASSERT_EQ(kernels.param_count(), count_params(model));
  StepResult a = train_pass(kernels, model), b = train_pass(ref, model);
  std::printf("  %s: loss %s %.6f reference %.6f\n", c.model.c_str(), backend_name(c.backend), a.loss, b.loss);
  EXPECT_NEAR(a.loss, b.loss, 1e-4 * std::abs(b.loss));
  EXPECT_TRUE(close_in_l2("weight gradients", a.grads, b.grads, c.grad_l2));
  EXPECT_TRUE(close("running statistics", a.state, b.state, c.state));
  for (const ParamRange& range : kernels.param_ranges()) {
    std::vector<float> ga(a.grads.begin() + range.offset, a.grads.begin() + range.offset + range.count);
    std::vector<float> gb(b.grads.begin() + range.offset, b.grads.begin() + range.offset + range.count);
    EXPECT_TRUE(close_in_l2("  " + range.node_name, ga, gb, c.grad_l2));
  }
}

// ImageNet ResNets get 64x64 inputs so that their last batch norms see 12 values per channel, not
// 2 as with 32x32: with 2 the statistics are so ill-conditioned that round-off dominates.
std::vector<ZooCase> zoo_cases() {
  const std::vector<ZooCase> models{ZooCase{"lenet5", {1, 28, 28}, 4},        ZooCase{"alexnet", {3, 32, 32}, 2},
                                    ZooCase{"vgg11", {3, 32, 32}, 2},         ZooCase{"resnet20", {3, 32, 32}, 2},
                                    ZooCase{"resnet18", {3, 64, 64}, 3, 0.1, 1e-4},
                                    ZooCase{"resnet50", {3, 64, 64}, 3, 0.1, 1e-4}};
  std::vector<ZooCase> cases;
  for (Backend backend : {Backend::cpu, Backend::cuda}) {
    for (ZooCase c : models) {
      c.backend = backend;
      cases.push_back(c);
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooNetwork, ::testing::ValuesIn(zoo_cases()),
                         [](const auto& info) { return zoo_case_name(info.param); });

// A small residual model with forks, an option-A shortcut and a projection. It has no ReLU or max
// pooling, so the loss is smooth and central differences are accurate.
ModelSpec tiny_resnet() {
  ModelSpec m{"tiny", {3, 8, 8}, 5, {}};
  auto add = [&](std::string name, LayerSpec layer, std::vector<int> inputs) {
    m.nodes.push_back({std::move(name), std::move(layer), std::move(inputs)});
    return int(m.nodes.size()) - 1;
  };
  int stem = add("conv1", Conv2dSpec{8, 3, 1, 1, false}, {kImages});
  stem = add("bn1", BatchNormSpec{}, {stem});
  int branch = add("b.conv", Conv2dSpec{16, 3, 2, 1, true}, {stem});
  branch = add("b.bn", BatchNormSpec{}, {branch});
  int pad = add("b.shortcut", ShortcutPadSpec{16, 2}, {stem});
  int sum = add("b.add", AddSpec{}, {branch, pad});
  int proj = add("c.proj", Conv2dSpec{16, 1, 1, 0, false}, {sum});
  sum = add("c.add", AddSpec{}, {proj, sum});
  sum = add("pool", GlobalAvgPoolSpec{}, {sum});
  sum = add("fc", LinearSpec{5, true}, {sum});
  add("loss", SoftmaxCrossEntropySpec{}, {sum});
  return m;
}

double loss_at(Network& net, const ModelSpec& model, const std::vector<float>& weights) {
  std::copy(weights.begin(), weights.end(), net.weights().begin());
  net.weights_changed();
  load_inputs(net, model, 11);
  net.forward(0, Phase::train, 5, net.current_weights());
  return net.loss_sum(0, net.batch()) / double(net.batch());
}

// The directional derivative of the loss along a random direction: backprop's g·d against
// (L(w + εd) − L(w − εd)) / 2ε, for each parameter tensor separately.
TEST(NetworkGradient, MatchesFiniteDifferencesPerParameterTensor) {
  ModelSpec model = tiny_resnet();
  Network net(model, 0, int(model.nodes.size()), {Backend::reference, 3, 1, 9});
  StepResult step = train_pass(net, model);
  const std::vector<float> base(net.weights().begin(), net.weights().end());
  for (const ParamRange& range : net.param_ranges()) {
    std::vector<float> direction = random_values(range.count, 77 + range.offset);
    double analytic = 0;
    for (int64_t i = 0; i < range.count; ++i) analytic += double(step.grads[range.offset + i]) * direction[i];
    const double eps = 1e-3;
    std::vector<float> plus = base, minus = base;
    for (int64_t i = 0; i < range.count; ++i) {
      plus[range.offset + i] += float(eps * direction[i]);
      minus[range.offset + i] -= float(eps * direction[i]);
    }
    double numeric = (loss_at(net, model, plus) - loss_at(net, model, minus)) / (2 * eps);
    std::printf("  %-12s analytic %+.6f numeric %+.6f\n", range.node_name.c_str(), analytic, numeric);
    EXPECT_NEAR(analytic, numeric, 2e-3 * std::max(1.0, std::abs(numeric))) << range.node_name;
  }
}

// Runs [0, cut) and [cut, end) by hand, handing boundary tensors across, against the whole model.
class NetworkStages : public ::testing::TestWithParam<Backend> {};

TEST_P(NetworkStages, SplitAcrossSkipConnectionsEqualsWholeModel) {
  BATON_SKIP_UNLESS_AVAILABLE(GetParam());
  ModelSpec model = build_model("resnet20", {3, 32, 32}, 10);
  const int end = int(model.nodes.size());
  int cut = 0;
  while (model.nodes[cut].name != "layer2.0.bn2") ++cut;  // inside a block: the skip crosses the cut
  const NetworkOptions options{GetParam(), 2, 1, 3};
  Network whole(model, 0, end, options), head(model, 0, cut, options), tail(model, cut, end, options);
  ASSERT_EQ(head.leaving(), tail.entering());
  ASSERT_GE(head.leaving().size(), 2u) << "the skip connection should cross the cut";
  ASSERT_EQ(head.param_count() + tail.param_count(), whole.param_count());

  StepResult reference = train_pass(whole, model);
  load_inputs(head, model, 11);
  load_inputs(tail, model, 11);  // labels
  head.zero_grads();
  tail.zero_grads();
  head.forward(0, Phase::train, 5, head.current_weights());
  for (size_t i = 0; i < head.leaving().size(); ++i) {
    const Tensor& out = head.output(0, i);
    std::copy(out.data(), out.data() + out.numel(), tail.input(0, i).data());
  }
  tail.forward(0, Phase::train, 5, tail.current_weights());
  tail.backward_data(0, tail.current_weights(), 0.5f);
  for (size_t i = 0; i < tail.entering().size(); ++i) {
    const Tensor& grad = tail.input_grad(0, i);
    std::copy(grad.data(), grad.data() + grad.numel(), head.output_grad(0, i).data());
  }
  head.backward_data(0, head.current_weights(), 0.5f);
  head.backward_weights(0, head.grads().data());
  tail.backward_weights(0, tail.grads().data());

  std::printf("  loss whole %.7f split %.7f\n", reference.loss, tail.loss_sum(0, 2));
  EXPECT_NEAR(tail.loss_sum(0, 2), reference.loss, 1e-5 * std::abs(reference.loss));
  std::vector<float> split(head.grads().begin(), head.grads().end());
  split.insert(split.end(), tail.grads().begin(), tail.grads().end());
  EXPECT_TRUE(close("weight gradients", split, reference.grads, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(Backends, NetworkStages, ::testing::Values(Backend::cpu, Backend::cuda),
                         [](const auto& info) { return std::string(backend_name(info.param)); });

}  // namespace
}  // namespace baton::layers

namespace baton::layers {
namespace {

// Where the oneDNN kernels apply a ReLU inside a neighbouring layer (batch norm and residual add
// after themselves, max pooling before itself), the range [1, end) of these models must match the
// reference kernels, which run every ReLU on its own: outputs, input and weight gradients.
struct FusedCase {
  std::string name;
  std::vector<Node> nodes;  // node 0 makes the entering value, so it has a gradient
  int relu;                 // the ReLU node the oneDNN kernels fold into its neighbour
};

class FusedRelu : public ::testing::TestWithParam<FusedCase> {};

TEST_P(FusedRelu, MatchesSeparateReluOnReferenceKernels) {
  const FusedCase& c = GetParam();
  ModelSpec model{c.name, {16, 6, 6}, 4, c.nodes};
  model.nodes.push_back({"pool", GlobalAvgPoolSpec{}, {int(model.nodes.size()) - 1}});
  model.nodes.push_back({"fc", LinearSpec{4}, {int(model.nodes.size()) - 1}});
  model.nodes.push_back({"loss", SoftmaxCrossEntropySpec{}, {int(model.nodes.size()) - 1}});
  const int end = int(c.nodes.size());
  std::vector<float> outputs[2], input_grads[2], grads[2];
  for (int b = 0; b < 2; ++b) {
    Network net(model, 1, end, {b == 0 ? Backend::cpu : Backend::reference, 3, 1, 4});
    ASSERT_EQ(net.entering().size(), 1u);
    EXPECT_EQ(net.absorbed_relus(), b == 0 ? std::vector<int>{c.relu} : std::vector<int>{});
    std::vector<float> x = random_values(net.input(0, 0).numel(), 21);
    std::copy(x.begin(), x.end(), net.input(0, 0).data());
    net.forward(0, Phase::train, 1, net.current_weights());
    const Tensor& y = net.output(0, 0);
    outputs[b].assign(y.data(), y.data() + y.numel());
    std::vector<float> dy = random_values(y.numel(), 22);
    std::copy(dy.begin(), dy.end(), net.output_grad(0, 0).data());
    net.backward_data(0, net.current_weights(), 1.0f);
    net.backward_weights(0, net.grads().data());
    const Tensor& dx = net.input_grad(0, 0);
    input_grads[b].assign(dx.data(), dx.data() + dx.numel());
    grads[b].assign(net.grads().begin(), net.grads().end());
  }
  EXPECT_TRUE(close("output", outputs[0], outputs[1], 1e-5));
  EXPECT_TRUE(close("input gradient", input_grads[0], input_grads[1], 1e-5));
  EXPECT_TRUE(close("weight gradients", grads[0], grads[1], 1e-5));
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, FusedRelu,
    ::testing::Values(
        FusedCase{"batchnorm_then_relu",
                  {{"conv", Conv2dSpec{16, 3, 1, 1}, {kImages}}, {"bn", BatchNormSpec{}, {0}}, {"relu", ReluSpec{}, {1}}},
                  2},
        FusedCase{"add_then_relu",
                  {{"conv", Conv2dSpec{16, 3, 1, 1}, {kImages}},
                   {"bn", BatchNormSpec{}, {0}},
                   {"add", AddSpec{}, {1, 0}},
                   {"relu", ReluSpec{}, {2}}},
                  3},
        FusedCase{"relu_then_maxpool",
                  {{"conv", Conv2dSpec{16, 3, 1, 1}, {kImages}},
                   {"relu", ReluSpec{}, {0}},
                   {"pool", MaxPoolSpec{2, 2}, {1}}},
                  1}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace baton::layers
