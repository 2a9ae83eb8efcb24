// Verifies the oracle itself: every reference backward against central finite differences in
// double, every forward against hand-computed values, and the reference Layer wrappers' wiring
// (parameter offsets, slots, gradient accumulation) against direct calls of reference_ops<float>.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "layers/layer.hpp"
#include "layers/reference/reference_ops.hpp"
#include "runtime/base/error.hpp"
#include "runtime/base/rng.hpp"

namespace baton::layers::reference {
namespace {

using Vec = std::vector<double>;
using Tensors = std::vector<Vec>;

Vec random_normal(int64_t count, uint64_t key, double scale = 1.0, double shift = 0.0) {
  Vec values(count);
  for (int64_t i = 0; i < count; ++i) values[i] = shift + scale * normal01(key, i);
  return values;
}

double dot(const Vec& a, const Vec& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// backward_data must overwrite its output, so it starts as garbage.
Vec overwrite_target(int64_t count) { return Vec(count, 1.0e3); }

// backward_weights must accumulate, so its output starts at an offset that is removed afterwards.
constexpr double kGradOffset = 0.25;
Vec accumulate_target(int64_t count) { return Vec(count, kGradOffset); }
Vec remove_offset(Vec grad) {
  for (double& g : grad) g -= kGradOffset;
  return grad;
}

// ---- the finite-difference harness ------------------------------------------------------------

// A scalar objective of some tensors (inputs, then parameters) and its analytic gradient.
struct GradientProblem {
  std::string label;
  std::vector<std::string> names;
  Tensors tensors;
  std::function<double(const Tensors&)> objective;
  std::function<Tensors(const Tensors&)> gradients;
};

struct Tolerance {
  double abs = 1e-8;
  double rel = 1e-6;
  double step = 1e-5;  // of the central differences
};

Vec numeric_gradient(const GradientProblem& problem, size_t which, double step) {
  Tensors tensors = problem.tensors;
  Vec grad(tensors[which].size());
  for (size_t i = 0; i < grad.size(); ++i) {
    const double original = tensors[which][i];
    tensors[which][i] = original + step;
    const double plus = problem.objective(tensors);
    tensors[which][i] = original - step;
    const double minus = problem.objective(tensors);
    tensors[which][i] = original;
    grad[i] = (plus - minus) / (2 * step);
  }
  return grad;
}

// Passes where |analytic - numeric| <= abs + rel * max(|analytic|, |numeric|) for every element.
// Prints the largest absolute and relative differences (relative over the elements not ~0).
void check_gradients(const GradientProblem& problem, Tolerance tolerance = {}) {
  SCOPED_TRACE(problem.label);
  const Tensors analytic = problem.gradients(problem.tensors);
  ASSERT_EQ(analytic.size(), problem.tensors.size());
  for (size_t t = 0; t < problem.tensors.size(); ++t) {
    const Vec numeric = numeric_gradient(problem, t, tolerance.step);
    ASSERT_EQ(analytic[t].size(), numeric.size()) << problem.names[t];
    double largest = 0;
    for (double n : numeric) largest = std::max(largest, std::abs(n));
    double max_abs = 0, max_rel = 0;
    int64_t failures = 0, first_failure = -1;
    for (size_t i = 0; i < numeric.size(); ++i) {
      const double diff = std::abs(analytic[t][i] - numeric[i]);
      const double scale = std::max(std::abs(analytic[t][i]), std::abs(numeric[i]));
      max_abs = std::max(max_abs, diff);
      if (scale > 1e-6 * largest) max_rel = std::max(max_rel, diff / scale);
      if (diff > tolerance.abs + tolerance.rel * scale && failures++ == 0) first_failure = static_cast<int64_t>(i);
    }
    std::printf("  %-44s d%-7s max abs diff %.2e  max rel diff %.2e  (max |grad| %.2e)\n", problem.label.c_str(),
                problem.names[t].c_str(), max_abs, max_rel, largest);
    EXPECT_EQ(failures, 0) << "d" << problem.names[t] << ": " << failures << " element(s) off, first at " << first_failure
                           << ": analytic " << analytic[t][std::max<int64_t>(first_failure, 0)] << " numeric "
                           << numeric[std::max<int64_t>(first_failure, 0)];
    EXPECT_GT(largest, 1e-3) << "d" << problem.names[t] << " is ~0 everywhere, so this check proves nothing";
  }
}

using Forward = std::function<Vec(const Tensors&)>;
using Backward = std::function<Tensors(const Tensors& tensors, const Vec& dy)>;

// L = sum(y * r) for a fixed random r, so the analytic gradient is the backward of dy = r.
GradientProblem weighted_sum_problem(std::string label, std::vector<std::string> names, Tensors tensors,
                                     Forward forward, Backward backward) {
  const Vec r = random_normal(static_cast<int64_t>(forward(tensors).size()), 7777);
  return GradientProblem{std::move(label), std::move(names), std::move(tensors),
                         [forward, r](const Tensors& t) { return dot(forward(t), r); },
                         [backward, r](const Tensors& t) { return backward(t, r); }};
}

// One input x, no parameters: forward(x, y) and backward(x, dy, dx) on the given dims.
using UnaryForward = std::function<void(const double* x, double* y)>;
using UnaryBackward = std::function<void(const double* x, const double* dy, double* dx)>;

GradientProblem unary_problem(std::string label, const LayerSpec& spec, const Dims& x_dims, Vec x,
                              UnaryForward forward, UnaryBackward backward) {
  const int64_t x_count = element_count(x_dims);
  const int64_t y_count = element_count(infer_output_dims(spec, {x_dims}));
  return weighted_sum_problem(
      label + " " + to_string(x_dims), {"x"}, {std::move(x)},
      [forward, y_count](const Tensors& t) {
        Vec y(y_count);
        forward(t[0].data(), y.data());
        return y;
      },
      [backward, x_count](const Tensors& t, const Vec& dy) {
        Vec dx = overwrite_target(x_count);
        backward(t[0].data(), dy.data(), dx.data());
        return Tensors{dx};
      });
}

// ---- gradient checks: layers with weights ------------------------------------------------------

template <class Spec>
struct WeightedOps {
  void (*forward)(const Spec&, const Dims&, const double*, const double*, const double*, double*);
  void (*backward_data)(const Spec&, const Dims&, const double*, const double*, double*);
  void (*backward_weights)(const Spec&, const Dims&, const double*, const double*, double*, double*);
};
const WeightedOps<Conv2dSpec> conv_ops{conv2d_forward<double>, conv2d_backward_data<double>,
                                       conv2d_backward_weights<double>};
const WeightedOps<LinearSpec> linear_ops{linear_forward<double>, linear_backward_data<double>,
                                         linear_backward_weights<double>};

// Tensors: x, weight and (when the spec has one) bias, in param_specs() order.
template <class Spec>
GradientProblem weighted_problem(const Spec& spec, const Dims& x_dims, WeightedOps<Spec> ops) {
  const std::vector<ParamSpec> params = param_specs(spec, {x_dims});
  const int64_t y_count = element_count(infer_output_dims(spec, {x_dims}));
  Tensors tensors{random_normal(element_count(x_dims), 1)};
  std::vector<std::string> names{"x"};
  for (const ParamSpec& p : params) {
    tensors.push_back(random_normal(element_count(p.dims), 2 + tensors.size(), 0.3));
    names.push_back(p.name);
  }
  const bool bias = params.size() == 2;
  auto forward = [=](const Tensors& t) {
    Vec y(y_count);
    ops.forward(spec, x_dims, t[0].data(), t[1].data(), bias ? t[2].data() : nullptr, y.data());
    return y;
  };
  auto backward = [=](const Tensors& t, const Vec& dy) {
    Tensors grads{overwrite_target(t[0].size())};
    for (size_t i = 1; i < t.size(); ++i) grads.push_back(accumulate_target(t[i].size()));
    ops.backward_data(spec, x_dims, t[1].data(), dy.data(), grads[0].data());
    ops.backward_weights(spec, x_dims, t[0].data(), dy.data(), grads[1].data(), bias ? grads[2].data() : nullptr);
    for (size_t i = 1; i < grads.size(); ++i) grads[i] = remove_offset(grads[i]);
    return grads;
  };
  return weighted_sum_problem(describe(spec) + " " + to_string(x_dims), names, tensors, forward, backward);
}

TEST(ReferenceGradient, Conv2d) {
  struct Case {
    Dims x;
    Conv2dSpec spec;
  };
  const Case cases[] = {
      {{2, 3, 7, 7}, {.out_channels = 5, .kernel = 3, .stride = 1, .padding = 0, .bias = true}},
      {{2, 3, 7, 6}, {.out_channels = 4, .kernel = 3, .stride = 2, .padding = 1, .bias = false}},
      {{1, 2, 8, 9}, {.out_channels = 3, .kernel = 5, .stride = 2, .padding = 2, .bias = true}},
      {{2, 4, 5, 5}, {.out_channels = 6, .kernel = 1, .stride = 1, .padding = 0, .bias = true}},
      {{2, 3, 9, 8}, {.out_channels = 2, .kernel = 3, .stride = 2, .padding = 0, .bias = true}},
      {{1, 5, 6, 6}, {.out_channels = 3, .kernel = 3, .stride = 1, .padding = 2, .bias = false}},
  };
  for (const Case& c : cases) check_gradients(weighted_problem(c.spec, c.x, conv_ops));
}

TEST(ReferenceGradient, Linear) {
  check_gradients(weighted_problem(LinearSpec{.out_features = 5, .bias = true}, {3, 7}, linear_ops));
  check_gradients(weighted_problem(LinearSpec{.out_features = 2, .bias = false}, {4, 6}, linear_ops));
}

// Tensors: x and gamma_beta. Training phase: the gradient flows through the batch statistics.
GradientProblem batchnorm_problem(const BatchNormSpec& spec, const Dims& x_dims) {
  const int64_t channels = x_dims[1];
  const int64_t count = element_count(x_dims);
  Vec gamma_beta = random_normal(channels, 11, 0.3, 1.0);
  const Vec beta = random_normal(channels, 12, 0.5);
  gamma_beta.insert(gamma_beta.end(), beta.begin(), beta.end());
  auto forward_train = [=](const Tensors& t, Vec& mean, Vec& invstd) {
    Vec y(count), running(2 * channels, 1.0);
    mean.assign(channels, 0);
    invstd.assign(channels, 0);
    batchnorm_forward_train(spec, x_dims, t[0].data(), t[1].data(), running.data(), y.data(), mean.data(),
                            invstd.data());
    return y;
  };
  auto forward = [=](const Tensors& t) {
    Vec mean, invstd;
    return forward_train(t, mean, invstd);
  };
  auto backward = [=](const Tensors& t, const Vec& dy) {
    Vec mean, invstd;
    forward_train(t, mean, invstd);
    Vec dx = overwrite_target(count), dparams = accumulate_target(2 * channels);
    batchnorm_backward_data(x_dims, t[0].data(), t[1].data(), mean.data(), invstd.data(), dy.data(), dx.data());
    batchnorm_backward_weights(x_dims, t[0].data(), mean.data(), invstd.data(), dy.data(), dparams.data());
    return Tensors{dx, remove_offset(dparams)};
  };
  return weighted_sum_problem("batchnorm train " + to_string(x_dims), {"x", "gamma_beta"},
                              {random_normal(count, 13, 1.5, 0.7), gamma_beta}, forward, backward);
}

TEST(ReferenceGradient, BatchNormTrain) {
  check_gradients(batchnorm_problem(BatchNormSpec{}, {3, 4, 3, 2}));
  check_gradients(batchnorm_problem(BatchNormSpec{}, {6, 5}));
  check_gradients(batchnorm_problem(BatchNormSpec{.momentum = 0.3f, .epsilon = 1e-3f}, {4, 3, 1, 1}));
}

// ---- gradient checks: layers without weights ---------------------------------------------------

// Distinct values at least 0.05 apart in a random order, so no max-pool window has a tie.
Vec distinct_values(int64_t count, uint64_t key) {
  std::vector<std::pair<double, int64_t>> order;
  for (int64_t i = 0; i < count; ++i) order.push_back({normal01(key, i), i});
  std::sort(order.begin(), order.end());
  Vec values(count);
  for (int64_t rank = 0; rank < count; ++rank) values[order[rank].second] = 0.05 * double(rank - count / 2);
  return values;
}

TEST(ReferenceGradient, MaxPool) {
  const MaxPoolSpec specs[] = {{.kernel = 2, .stride = 2, .padding = 0},
                               {.kernel = 3, .stride = 2, .padding = 1},
                               {.kernel = 3, .stride = 1, .padding = 1}};
  const Dims x_dims{2, 3, 6, 5};
  for (const MaxPoolSpec& s : specs) {
    const int64_t y_count = element_count(infer_output_dims(s, {x_dims}));
    check_gradients(unary_problem(
        describe(s), s, x_dims, distinct_values(element_count(x_dims), 21),
        [=](const double* x, double* y) {
          std::vector<int64_t> argmax(y_count);
          maxpool_forward(s, x_dims, x, y, argmax.data());
        },
        [=](const double* x, const double* dy, double* dx) {
          Vec y(y_count);
          std::vector<int64_t> argmax(y_count);
          maxpool_forward(s, x_dims, x, y.data(), argmax.data());
          maxpool_backward_data(s, x_dims, argmax.data(), dy, dx);
        }));
  }
}

TEST(ReferenceGradient, AvgPool) {
  const AvgPoolSpec specs[] = {{.kernel = 2, .stride = 2, .padding = 0},
                               {.kernel = 3, .stride = 2, .padding = 1},
                               {.kernel = 3, .stride = 1, .padding = 1},
                               {.kernel = 4, .stride = 2, .padding = 2}};
  const Dims x_dims{2, 3, 6, 7};
  for (const AvgPoolSpec& s : specs)
    check_gradients(unary_problem(
        describe(s), s, x_dims, random_normal(element_count(x_dims), 22),
        [=](const double* x, double* y) { avgpool_forward(s, x_dims, x, y); },
        [=](const double*, const double* dy, double* dx) { avgpool_backward_data(s, x_dims, dy, dx); }));
}

TEST(ReferenceGradient, GlobalAvgPool) {
  const Dims x_dims{3, 4, 5, 3};
  check_gradients(unary_problem(
      "global_avgpool", GlobalAvgPoolSpec{}, x_dims, random_normal(element_count(x_dims), 23),
      [=](const double* x, double* y) { global_avgpool_forward(x_dims, x, y); },
      [=](const double*, const double* dy, double* dx) { global_avgpool_backward_data(x_dims, dy, dx); }));
}

TEST(ReferenceGradient, Relu) {
  const Dims x_dims{2, 3, 4, 4};
  const int64_t count = element_count(x_dims);
  Vec x = random_normal(count, 24);
  for (double& v : x) v = v < 0 ? v - 0.05 : v + 0.05;  // away from the kink at 0
  check_gradients(unary_problem(
      "relu", ReluSpec{}, x_dims, x, [=](const double* in, double* y) { relu_forward(count, in, y); },
      [=](const double* in, const double* dy, double* dx) {
        Vec y(count);
        relu_forward(count, in, y.data());
        relu_backward_data(count, y.data(), dy, dx);
      }));
}

TEST(ReferenceGradient, Dropout) {
  const DropoutSpec spec{.probability = 0.5f};
  const Dims x_dims{4, 50};
  const int64_t count = element_count(x_dims);
  const uint64_t key = 0x5eed;
  check_gradients(unary_problem(
      "dropout p=0.5", spec, x_dims, random_normal(count, 25),
      [=](const double* x, double* y) { dropout_forward(spec, count, key, x, y); },
      [=](const double*, const double* dy, double* dx) { dropout_backward_data(spec, count, key, dy, dx); }));
}

TEST(ReferenceGradient, Flatten) {
  const Dims x_dims{2, 3, 2, 4};
  check_gradients(unary_problem(
      "flatten", FlattenSpec{}, x_dims, random_normal(element_count(x_dims), 26),
      [=](const double* x, double* y) { flatten_forward(x_dims, x, y); },
      [=](const double*, const double* dy, double* dx) { flatten_backward_data(x_dims, dy, dx); }));
}

TEST(ReferenceGradient, ShortcutPad) {
  const ShortcutPadSpec specs[] = {{.out_channels = 4, .stride = 1}, {.out_channels = 7, .stride = 2}};
  const Dims x_dims[] = {{2, 2, 4, 4}, {2, 3, 5, 6}};
  for (int i = 0; i < 2; ++i) {
    const ShortcutPadSpec s = specs[i];
    const Dims d = x_dims[i];
    check_gradients(unary_problem(
        describe(s), s, d, random_normal(element_count(d), 27),
        [=](const double* x, double* y) { shortcut_pad_forward(s, d, x, y); },
        [=](const double*, const double* dy, double* dx) { shortcut_pad_backward_data(s, d, dy, dx); }));
  }
}

TEST(ReferenceGradient, Lrn) {
  // AlexNet's constants barely bend the curve, so strong ones are checked too; size 4 checks
  // the asymmetric window.
  const LrnSpec specs[] = {{.size = 5, .alpha = 1e-4f, .beta = 0.75f, .k = 2.0f},
                           {.size = 5, .alpha = 2.0f, .beta = 0.75f, .k = 1.0f},
                           {.size = 3, .alpha = 1.5f, .beta = 0.6f, .k = 1.5f},
                           {.size = 4, .alpha = 1.0f, .beta = 1.2f, .k = 1.0f}};
  const Dims x_dims{2, 7, 3, 2};
  for (const LrnSpec& s : specs)
    check_gradients(unary_problem(
        describe(s) + " alpha " + std::to_string(s.alpha), s, x_dims, random_normal(element_count(x_dims), 28),
        [=](const double* x, double* y) { lrn_forward(s, x_dims, x, y); },
        [=](const double* x, const double* dy, double* dx) { lrn_backward_data(s, x_dims, x, dy, dx); }));
}

TEST(ReferenceGradient, Add) {
  const int64_t count = 24;
  auto forward = [=](const Tensors& t) {
    Vec y(count);
    add_forward(count, t[0].data(), t[1].data(), y.data());
    return y;
  };
  auto backward = [=](const Tensors&, const Vec& dy) {
    Tensors grads{overwrite_target(count), overwrite_target(count)};
    add_backward_data(count, dy.data(), grads[0].data(), grads[1].data());
    return grads;
  };
  check_gradients(weighted_sum_problem("add", {"a", "b"}, {random_normal(count, 29), random_normal(count, 30)},
                                       forward, backward));
}

// L = loss_scale * sum of per-sample losses; the backward ignores any output gradient.
TEST(ReferenceGradient, SoftmaxCrossEntropy) {
  const Dims dims{4, 5};
  const std::vector<int32_t> labels{0, 3, 4, 2};
  const double loss_scale = 0.37;
  GradientProblem problem{
      "softmax_xent " + to_string(dims),
      {"logits"},
      {random_normal(element_count(dims), 31, 2.0)},
      [=](const Tensors& t) {
        Vec loss(dims[0]);
        softmax_xent_forward(dims, t[0].data(), labels.data(), loss.data());
        double sum = 0;
        for (double l : loss) sum += l;
        return loss_scale * sum;
      },
      [=](const Tensors& t) {
        Vec dlogits = overwrite_target(element_count(dims));
        softmax_xent_backward_data(dims, t[0].data(), labels.data(), loss_scale, dlogits.data());
        return Tensors{dlogits};
      }};
  check_gradients(problem);
}

// ---- forwards against hand-computed values ----------------------------------------------------

void expect_values(const Vec& actual, const Vec& expected, double tolerance = 1e-12) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], tolerance) << "at " << i;
}

TEST(ReferenceForward, Conv2dTiny) {
  const Vec x{1, 2, 3, 4, 5, 6, 7, 8, 9};  // {1,1,3,3}
  const Vec w{1, 2, 3, 4};                 // {1,1,2,2}, asymmetric: cross-correlation, not convolution
  const Vec b{0.5};
  Vec y(4);
  conv2d_forward(Conv2dSpec{.out_channels = 1, .kernel = 2}, {1, 1, 3, 3}, x.data(), w.data(), b.data(), y.data());
  expect_values(y, {37.5, 47.5, 67.5, 77.5});
  conv2d_forward(Conv2dSpec{.out_channels = 1, .kernel = 2, .stride = 2, .padding = 1}, {1, 1, 3, 3}, x.data(),
                 w.data(), b.data(), y.data());
  expect_values(y, {4.5, 18.5, 36.5, 77.5});
}

TEST(ReferenceForward, Conv2dWeightIsOIHW) {
  const Vec x{1, 2, 3, 4, 10, 20, 30, 40};  // {1,2,2,2}
  const Vec w{1, 2, 3, 4};                  // {O=2, I=2, 1, 1}: out0 = x0 + 2 x1, out1 = 3 x0 + 4 x1
  Vec y(8);
  conv2d_forward(Conv2dSpec{.out_channels = 2, .kernel = 1, .bias = false}, {1, 2, 2, 2}, x.data(), w.data(),
                 static_cast<const double*>(nullptr), y.data());
  expect_values(y, {21, 42, 63, 84, 43, 86, 129, 172});
}

TEST(ReferenceForward, Linear) {
  const Vec x{1, 2, 3, 4, 5, 6};   // {2,3}
  const Vec w{1, 0, -1, 2, 1, 0};  // {out=2, in=3}
  const Vec b{0.5, -1};
  Vec y(4);
  linear_forward(LinearSpec{.out_features = 2}, {2, 3}, x.data(), w.data(), b.data(), y.data());
  expect_values(y, {-1.5, 3, -1.5, 12});
}

TEST(ReferenceForward, MaxPool) {
  Vec y(4);
  std::vector<int64_t> argmax(4);
  // Padding is -inf, not zero: an all-negative input keeps its maximum.
  const Vec negative{-1, -2, -3, -4};
  maxpool_forward(MaxPoolSpec{.kernel = 3, .stride = 1, .padding = 1}, {1, 1, 2, 2}, negative.data(), y.data(),
                  argmax.data());
  expect_values(y, {-1, -1, -1, -1});
  // A tie sends the gradient to the first maximum in row-major window order.
  const Vec ties{1, 5, 5, 5, 2, 2, 3, 1};  // {1,1,2,4}: windows {1,5,2,2} and {5,5,3,1}
  maxpool_forward(MaxPoolSpec{.kernel = 2, .stride = 2}, {1, 1, 2, 4}, ties.data(), y.data(), argmax.data());
  expect_values({y[0], y[1]}, {5, 5});
  EXPECT_EQ(argmax[0], 1);
  EXPECT_EQ(argmax[1], 2);
  const Vec dy{10, 20};
  Vec dx(8, -1);
  maxpool_backward_data(MaxPoolSpec{.kernel = 2, .stride = 2}, {1, 1, 2, 4}, argmax.data(), dy.data(), dx.data());
  expect_values(dx, {0, 10, 20, 0, 0, 0, 0, 0});
}

TEST(ReferenceForward, AvgPoolCountsPadding) {
  const Vec x{1, 2, 3, 4};  // {1,1,2,2}
  Vec y(9);
  avgpool_forward(AvgPoolSpec{.kernel = 2, .stride = 1, .padding = 1}, {1, 1, 2, 2}, x.data(), y.data());
  expect_values(y, {0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0});
}

TEST(ReferenceForward, GlobalAvgPool) {
  const Vec x{1, 3, 10, 20};  // {1,2,1,2}
  Vec y(2);
  global_avgpool_forward({1, 2, 1, 2}, x.data(), y.data());
  expect_values(y, {2, 15});
}

TEST(ReferenceForward, ReluAddFlatten) {
  const Vec x{-1, 0, 2, -0.5};
  Vec y(4), sum(4), flat(4);
  relu_forward(4, x.data(), y.data());
  expect_values(y, {0, 0, 2, 0});
  add_forward(4, x.data(), y.data(), sum.data());
  expect_values(sum, {-1, 0, 4, -0.5});
  flatten_forward({1, 1, 2, 2}, x.data(), flat.data());
  expect_values(flat, x);
}

// Channel 0 holds 1,3,5,7 (mean 4, variance 5, unbiased 20/3); channel 1 holds 0,4,8,12
// (mean 6, variance 20, unbiased 80/3).
TEST(ReferenceForward, BatchNormRunningStatistics) {
  const Dims dims{2, 2, 1, 2};
  const Vec x{1, 3, 0, 4, 5, 7, 8, 12};
  const Vec gamma_beta{2, 0.5, 1, -1};
  const BatchNormSpec spec{.momentum = 0.1f, .epsilon = 1e-5f};
  const double eps = double(1e-5f), momentum = double(0.1f);
  Vec running{0, 0, 1, 1}, y(8), mean(2), invstd(2);
  batchnorm_forward_train(spec, dims, x.data(), gamma_beta.data(), running.data(), y.data(), mean.data(),
                          invstd.data());
  expect_values(mean, {4, 6});
  expect_values(invstd, {1 / std::sqrt(5 + eps), 1 / std::sqrt(20 + eps)});
  expect_values(running, {momentum * 4, momentum * 6, (1 - momentum) + momentum * 20.0 / 3,
                          (1 - momentum) + momentum * 80.0 / 3});
  EXPECT_NEAR(y[0], 2 * (1 - 4) / std::sqrt(5 + eps) + 1, 1e-12);
  EXPECT_NEAR(y[7], 0.5 * (12 - 6) / std::sqrt(20 + eps) - 1, 1e-12);
  // Eval uses the running statistics.
  Vec y_eval(8);
  batchnorm_forward_eval(spec, dims, x.data(), gamma_beta.data(), running.data(), y_eval.data());
  EXPECT_NEAR(y_eval[0], 2 * (1 - running[0]) / std::sqrt(running[2] + eps) + 1, 1e-12);
  EXPECT_NEAR(y_eval[7], 0.5 * (12 - running[1]) / std::sqrt(running[3] + eps) - 1, 1e-12);
}

TEST(ReferenceForward, BatchNormFeatures) {
  const Vec x{1, 2, 3, 4};  // {4,1}: mean 2.5, variance 1.25, unbiased 5/3
  Vec running{0, 1}, y(4), mean(1), invstd(1);
  const Vec gamma_beta{1, 0};
  batchnorm_forward_train(BatchNormSpec{}, {4, 1}, x.data(), gamma_beta.data(), running.data(), y.data(),
                          mean.data(), invstd.data());
  const double momentum = double(0.1f);
  expect_values(running, {momentum * 2.5, (1 - momentum) + momentum * 5.0 / 3});
  EXPECT_NEAR(y[3], 1.5 / std::sqrt(1.25 + double(1e-5f)), 1e-12);
}

TEST(ReferenceForward, DropoutMask) {
  const int64_t count = 200000;
  const Vec x = random_normal(count, 41, 1.0, 3.0);
  for (float p : {0.5f, 0.2f}) {
    const DropoutSpec spec{.probability = p};
    Vec y(count), again(count), other(count);
    dropout_forward(spec, count, 7, x.data(), y.data());
    dropout_forward(spec, count, 7, x.data(), again.data());
    dropout_forward(spec, count, 8, x.data(), other.data());
    int64_t kept = 0, differ = 0;
    for (int64_t i = 0; i < count; ++i) {
      if (y[i] != 0) {
        ++kept;
        EXPECT_DOUBLE_EQ(y[i], x[i] / (1 - double(p))) << "at " << i;
      }
      EXPECT_EQ(y[i], again[i]) << "the same key must give the same mask, at " << i;
      differ += (y[i] != 0) != (other[i] != 0);
    }
    const double kept_fraction = double(kept) / count;
    std::printf("  dropout p=%.1f: kept fraction %.4f, masks of keys 7 and 8 differ in %.4f\n", p, kept_fraction,
                double(differ) / count);
    EXPECT_NEAR(kept_fraction, 1 - p, 0.01);
    EXPECT_NEAR(double(differ) / count, 2 * p * (1 - p), 0.01) << "another key must give an independent mask";
  }
}

TEST(ReferenceForward, ShortcutPadPlacement) {
  Vec x(18);  // {1,2,3,3} = 1..18
  for (int i = 0; i < 18; ++i) x[i] = i + 1;
  Vec y(16, -1);  // {1,4,2,2}: one zero channel each side, spatial 3 -> ceil(3/2) = 2
  shortcut_pad_forward(ShortcutPadSpec{.out_channels = 4, .stride = 2}, {1, 2, 3, 3}, x.data(), y.data());
  expect_values(y, {0, 0, 0, 0, 1, 3, 7, 9, 10, 12, 16, 18, 0, 0, 0, 0});
  Vec same(36, -1);  // stride 1: channels 1..2 of 4 hold x unchanged
  shortcut_pad_forward(ShortcutPadSpec{.out_channels = 4, .stride = 1}, {1, 2, 3, 3}, x.data(), same.data());
  Vec expected(36, 0);
  std::copy(x.begin(), x.end(), expected.begin() + 9);
  expect_values(same, expected);
}

// With alpha = size, the denominator is k + the plain sum of squares over the window.
TEST(ReferenceForward, LrnWindow) {
  const Vec x{1, 2, 3, 4};  // {1,4,1,1}
  Vec y(4);
  lrn_forward(LrnSpec{.size = 3, .alpha = 3, .beta = 1, .k = 1}, {1, 4, 1, 1}, x.data(), y.data());
  expect_values(y, {1.0 / 6, 2.0 / 15, 3.0 / 30, 4.0 / 26});
  // Even size: the window is [c - (size-1)/2, c + size/2] = [c, c + 1].
  lrn_forward(LrnSpec{.size = 2, .alpha = 2, .beta = 1, .k = 1}, {1, 4, 1, 1}, x.data(), y.data());
  expect_values(y, {1.0 / 6, 2.0 / 14, 3.0 / 26, 4.0 / 17});
  // beta applies as a power.
  lrn_forward(LrnSpec{.size = 3, .alpha = 3, .beta = 0.5, .k = 1}, {1, 4, 1, 1}, x.data(), y.data());
  EXPECT_NEAR(y[1], 2 / std::sqrt(15.0), 1e-12);
}

TEST(ReferenceForward, SoftmaxCrossEntropyStable) {
  const Vec logits{0, 0, 0, 1000, 1000, 0, 1, 2, 3};  // {3,3}
  const std::vector<int32_t> labels{1, 0, 2};
  Vec loss(3);
  softmax_xent_forward({3, 3}, logits.data(), labels.data(), loss.data());
  expect_values(loss, {std::log(3.0), std::log(2.0), std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3});
  const std::vector<int32_t> bad{1, 3, 0};
  EXPECT_THROW(softmax_xent_forward({3, 3}, logits.data(), bad.data(), loss.data()), baton::Error);
}

// ---- the Layer wrappers against direct calls in float -----------------------------------------

std::vector<float> random_floats(int64_t count, uint64_t key, float shift = 0.0f) {
  std::vector<float> values(count);
  for (int64_t i = 0; i < count; ++i) values[i] = shift + static_cast<float>(normal01(key, i));
  return values;
}

Tensor tensor_of(const Dims& dims, const std::vector<float>& values) {
  Tensor tensor(TensorSpec{dims, nullptr});
  std::copy(values.begin(), values.end(), tensor.data());
  return tensor;
}

std::vector<float> values_of(const Tensor& tensor) {
  return std::vector<float>(tensor.data(), tensor.data() + tensor.numel());
}

// Runs one layer on plain float tensors, keeping each slot's input and output.
struct LayerRig {
  std::unique_ptr<Layer> layer;
  Dims x_dims, y_dims;
  std::vector<float> params, state;
  std::vector<Tensor> x, y;  // per slot

  LayerRig(const LayerSpec& spec, Dims input_dims, int slots)
      : layer(make_layer(spec, Backend::reference)), x_dims(std::move(input_dims)) {
    LayerIO io = layer->setup({TensorSpec{x_dims, nullptr}}, slots);
    y_dims = io.output.dims;
    params = random_floats(param_count(spec, {x_dims}), 51, 0.5f);
    state.assign(state_count(spec, {x_dims}), 0.0f);
    for (int s = 0; s < slots; ++s) {
      x.push_back(tensor_of(x_dims, random_floats(element_count(x_dims), 60 + s)));
      y.emplace_back(TensorSpec{y_dims, nullptr});
    }
  }
  void forward(int slot, Phase phase = Phase::train) {
    std::vector<const Tensor*> inputs{&x[slot]};
    layer->forward(ForwardArgs{.inputs = inputs, .output = &y[slot], .slot = slot, .phase = phase,
                               .params = {params.data(), 1}, .state = state.data(), .random_key = 0,
                               .labels = nullptr});
  }
  // backward_data when dx is given, backward_weights into grads when it is given.
  void backward(int slot, const Tensor& dy, Tensor* dx, float* grads) {
    std::vector<const Tensor*> inputs{&x[slot]};
    std::vector<Tensor*> grad_inputs{dx};
    BackwardArgs args{.inputs = inputs, .output = &y[slot], .grad_output = &dy, .grad_inputs = grad_inputs,
                      .slot = slot, .params = {params.data(), 1}, .grads = grads, .loss_scale = 1.0f,
                      .labels = nullptr};
    if (dx) layer->backward_data(args);
    if (grads) layer->backward_weights(args);
  }
};

void expect_same(const std::vector<float>& actual, const std::vector<float>& expected, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) ASSERT_EQ(actual[i], expected[i]) << what << " at " << i;
}

void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i], 1e-5f * (1 + std::abs(expected[i]))) << what << " at " << i;
}

std::vector<float> sum_of(std::vector<float> a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

TEST(ReferenceLayer, ConvMatchesOps) {
  const Conv2dSpec spec{.out_channels = 4, .kernel = 3, .stride = 2, .padding = 1, .bias = true};
  LayerRig rig(spec, {2, 3, 6, 5}, 2);
  const float* weight = rig.params.data();
  const float* bias = weight + 4 * 3 * 3 * 3;
  rig.forward(0);
  rig.forward(1);
  const int64_t y_count = element_count(rig.y_dims);
  for (int s = 0; s < 2; ++s) {
    std::vector<float> y(y_count);
    conv2d_forward(spec, rig.x_dims, rig.x[s].data(), weight, bias, y.data());
    expect_same(values_of(rig.y[s]), y, "output");
  }
  const Tensor dy0 = tensor_of(rig.y_dims, random_floats(y_count, 70));
  const Tensor dy1 = tensor_of(rig.y_dims, random_floats(y_count, 71));
  Tensor dx(TensorSpec{rig.x_dims, nullptr});
  dx.fill(99.0f);
  std::vector<float> grads(rig.params.size(), 0.0f);
  rig.backward(0, dy0, &dx, grads.data());
  rig.backward(1, dy1, nullptr, grads.data());

  std::vector<float> expected_dx(element_count(rig.x_dims));
  conv2d_backward_data(spec, rig.x_dims, weight, dy0.data(), expected_dx.data());
  expect_same(values_of(dx), expected_dx, "input gradient");
  std::vector<float> g0(grads.size(), 0.0f), g1(grads.size(), 0.0f);
  conv2d_backward_weights(spec, rig.x_dims, rig.x[0].data(), dy0.data(), g0.data(), g0.data() + 108);
  conv2d_backward_weights(spec, rig.x_dims, rig.x[1].data(), dy1.data(), g1.data(), g1.data() + 108);
  expect_close(grads, sum_of(g0, g1), "weight gradients accumulated over two slots");
}

TEST(ReferenceLayer, BatchNormMatchesOps) {
  const BatchNormSpec spec{.momentum = 0.2f, .epsilon = 1e-5f};
  LayerRig rig(spec, {4, 3, 2, 2}, 2);
  rig.state = {0.1f, -0.2f, 0.3f, 1.0f, 2.0f, 0.5f};
  std::vector<float> running = rig.state;
  rig.forward(0);
  rig.forward(1);

  const int64_t count = element_count(rig.x_dims);
  std::vector<float> mean[2], invstd[2];
  for (int s = 0; s < 2; ++s) {
    std::vector<float> y(count);
    mean[s].resize(3);
    invstd[s].resize(3);
    batchnorm_forward_train(spec, rig.x_dims, rig.x[s].data(), rig.params.data(), running.data(), y.data(),
                            mean[s].data(), invstd[s].data());
    expect_same(values_of(rig.y[s]), y, "output");
  }
  expect_same(rig.state, running, "running statistics after two training forwards");

  // Slot 0's backward must use slot 0's batch statistics although slot 1 ran forward since.
  const Tensor dy0 = tensor_of(rig.x_dims, random_floats(count, 80));
  const Tensor dy1 = tensor_of(rig.x_dims, random_floats(count, 81));
  Tensor dx(TensorSpec{rig.x_dims, nullptr});
  std::vector<float> grads(6, 0.0f);
  rig.backward(0, dy0, &dx, grads.data());
  rig.backward(1, dy1, nullptr, grads.data());
  std::vector<float> expected_dx(count);
  batchnorm_backward_data(rig.x_dims, rig.x[0].data(), rig.params.data(), mean[0].data(), invstd[0].data(),
                          dy0.data(), expected_dx.data());
  expect_same(values_of(dx), expected_dx, "input gradient of slot 0");
  std::vector<float> g0(6, 0.0f), g1(6, 0.0f);
  batchnorm_backward_weights(rig.x_dims, rig.x[0].data(), mean[0].data(), invstd[0].data(), dy0.data(), g0.data());
  batchnorm_backward_weights(rig.x_dims, rig.x[1].data(), mean[1].data(), invstd[1].data(), dy1.data(), g1.data());
  expect_close(grads, sum_of(g0, g1), "gamma and beta gradients accumulated over two slots");

  // Eval uses the running statistics, leaves them alone, and has no backward.
  rig.forward(0, Phase::eval);
  std::vector<float> y_eval(count);
  batchnorm_forward_eval(spec, rig.x_dims, rig.x[0].data(), rig.params.data(), running.data(), y_eval.data());
  expect_same(values_of(rig.y[0]), y_eval, "eval output");
  expect_same(rig.state, running, "running statistics after an eval forward");
  EXPECT_THROW(rig.backward(0, dy0, &dx, nullptr), baton::Error);
}

TEST(ReferenceLayer, EveryKindSetsUpPlain) {
  const Dims image{2, 4, 6, 6};
  const std::vector<std::pair<LayerSpec, Dims>> cases{
      {Conv2dSpec{.out_channels = 8, .kernel = 3, .padding = 1}, image},
      {LinearSpec{.out_features = 3}, {2, 5}},
      {ReluSpec{}, image},
      {MaxPoolSpec{.kernel = 2, .stride = 2}, image},
      {AvgPoolSpec{.kernel = 3, .stride = 2, .padding = 1}, image},
      {GlobalAvgPoolSpec{}, image},
      {BatchNormSpec{}, image},
      {DropoutSpec{.probability = 0.5f}, image},
      {FlattenSpec{}, image},
      {AddSpec{}, image},
      {ShortcutPadSpec{.out_channels = 8, .stride = 2}, image},
      {LrnSpec{}, image},
      {SoftmaxCrossEntropySpec{}, {2, 5}},
  };
  for (const auto& [spec, dims] : cases) {
    SCOPED_TRACE(describe(spec));
    std::vector<Dims> input_dims(input_count(spec), dims);
    std::vector<TensorSpec> inputs;
    for (const Dims& d : input_dims) inputs.push_back(TensorSpec{d, nullptr});
    LayerIO io = make_layer(spec, Backend::reference)->setup(inputs, 3);
    EXPECT_TRUE(io.output.plain());
    EXPECT_EQ(io.output.dims, infer_output_dims(spec, input_dims));
    ASSERT_EQ(io.inputs.size(), inputs.size());
    for (const TensorSpec& in : io.inputs) EXPECT_TRUE(in.plain());
    EXPECT_EQ(io.input_grads == InputGrads::output_grad, std::holds_alternative<AddSpec>(spec));
  }
}

}  // namespace
}  // namespace baton::layers::reference
