// What each kind of layer is, independent of any kernel library: hyper-parameters, output-shape
// inference, parameter and state tensors, and the multiply-add cost of its three passes.
// Dims here are per batch: {N, C, H, W} for images, {N, F} for features.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "runtime/base/tensor.hpp"

namespace baton::layers {

struct Conv2dSpec {
  int64_t out_channels;
  int64_t kernel;
  int64_t stride = 1;
  int64_t padding = 0;
  bool bias = true;
};
struct LinearSpec {
  int64_t out_features;
  bool bias = true;
};
struct ReluSpec {};
struct MaxPoolSpec {
  int64_t kernel;
  int64_t stride;
  int64_t padding = 0;
};
struct AvgPoolSpec {  // padding counts as zeros in the average (PyTorch's count_include_pad=True)
  int64_t kernel;
  int64_t stride;
  int64_t padding = 0;
};
struct GlobalAvgPoolSpec {};  // {N,C,H,W} -> {N,C}
struct BatchNormSpec {
  float momentum = 0.1f;  // running = (1 - momentum) * running + momentum * batch
  float epsilon = 1e-5f;
};
struct DropoutSpec {
  float probability;  // of zeroing an element; survivors are scaled by 1 / (1 - p)
};
struct FlattenSpec {};  // {N,C,H,W} -> {N, C*H*W} in NCHW order
struct AddSpec {};      // residual add of two inputs of equal dims
// ResNet "option A" shortcut: subsample by `stride`, then zero-pad channels equally on both sides.
struct ShortcutPadSpec {
  int64_t out_channels;
  int64_t stride;
};
struct LrnSpec {  // across channels: y = x / (k + alpha/size * sum over the window of x^2)^beta
  int64_t size = 5;
  float alpha = 1e-4f;
  float beta = 0.75f;
  float k = 2.0f;
};
struct SoftmaxCrossEntropySpec {};  // {N, classes} logits + labels -> per-sample losses {N}

using LayerSpec = std::variant<Conv2dSpec, LinearSpec, ReluSpec, MaxPoolSpec, AvgPoolSpec, GlobalAvgPoolSpec,
                               BatchNormSpec, DropoutSpec, FlattenSpec, AddSpec, ShortcutPadSpec, LrnSpec,
                               SoftmaxCrossEntropySpec>;

std::string kind_name(const LayerSpec& spec);  // "conv2d", "linear", ...
std::string describe(const LayerSpec& spec);   // "conv2d 3x3/1 p1 64", for listings

// How many inputs the layer takes (2 for add, 1 otherwise).
int input_count(const LayerSpec& spec);

// Output dims for the given input dims; throws baton::Error with a sentence that says what
// does not fit (the caller adds which model and data set).
Dims infer_output_dims(const LayerSpec& spec, const std::vector<Dims>& inputs);

enum class Init { he_normal, uniform_fan_in, ones, zeros };
struct ParamSpec {
  std::string name;  // "weight", "bias"
  Dims dims;         // plain layout: OIHW for conv weights, {out, in} for linear
  Init init;
  int64_t fan_in = 1;
};
std::vector<ParamSpec> param_specs(const LayerSpec& spec, const std::vector<Dims>& inputs);
// Fills one parameter tensor with its initial values, a pure function of `key`.
void init_param(const ParamSpec& param, uint64_t key, float* values);
int64_t param_count(const LayerSpec& spec, const std::vector<Dims>& inputs);

// Non-trained state kept with the parameters: batch norm's running_mean (starts at 0), then its
// running_var (starts at 1), under PyTorch's buffer names.
std::vector<ParamSpec> state_specs(const LayerSpec& spec, const std::vector<Dims>& inputs);
int64_t state_count(const LayerSpec& spec, const std::vector<Dims>& inputs);
void init_state(const LayerSpec& spec, const std::vector<Dims>& inputs, float* state);

// Floating-point operations (2 per multiply-add) of each pass for the whole batch in `inputs`.
// Only convolutions and linear layers are counted; the rest are memory-bound and cost ~0 FLOPs.
struct PassFlops {
  double forward = 0;
  double backward_data = 0;
  double backward_weights = 0;
  double total() const { return forward + backward_data + backward_weights; }
};
PassFlops pass_flops(const LayerSpec& spec, const std::vector<Dims>& inputs);

bool has_params(const LayerSpec& spec);

}  // namespace baton::layers
