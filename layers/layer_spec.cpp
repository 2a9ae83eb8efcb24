// Shape inference, parameter lists and FLOP counts for every layer kind.
#include "layers/layer_spec.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"
#include "runtime/base/rng.hpp"

namespace baton::layers {
namespace {

void require_rank(const Dims& in, size_t rank, const std::string& what) {
  BATON_CHECK(in.size() == rank, what << " needs a " << (rank == 4 ? "N×C×H×W image" : "N×F feature")
                                      << " input but got " << to_string(in));
}

int64_t window_output(int64_t in, int64_t kernel, int64_t stride, int64_t padding) {
  return (in + 2 * padding - kernel) / stride + 1;
}

Dims window_dims(const Dims& in, int64_t channels, int64_t kernel, int64_t stride, int64_t padding,
                 const std::string& what) {
  require_rank(in, 4, what);
  int64_t h = window_output(in[2], kernel, stride, padding);
  int64_t w = window_output(in[3], kernel, stride, padding);
  BATON_CHECK(in[2] + 2 * padding >= kernel && in[3] + 2 * padding >= kernel && h > 0 && w > 0,
              what << " cannot take a " << in[2] << "x" << in[3] << " input: its " << kernel << "x" << kernel
                   << " window does not fit");
  return {in[0], channels, h, w};
}

}  // namespace

std::string kind_name(const LayerSpec& spec) {
  return std::visit(Overloaded{
                        [](const Conv2dSpec&) { return "conv2d"; },
                        [](const LinearSpec&) { return "linear"; },
                        [](const ReluSpec&) { return "relu"; },
                        [](const MaxPoolSpec&) { return "maxpool"; },
                        [](const AvgPoolSpec&) { return "avgpool"; },
                        [](const GlobalAvgPoolSpec&) { return "global_avgpool"; },
                        [](const BatchNormSpec&) { return "batchnorm"; },
                        [](const DropoutSpec&) { return "dropout"; },
                        [](const FlattenSpec&) { return "flatten"; },
                        [](const AddSpec&) { return "add"; },
                        [](const ShortcutPadSpec&) { return "shortcut_pad"; },
                        [](const LrnSpec&) { return "lrn"; },
                        [](const SoftmaxCrossEntropySpec&) { return "softmax_xent"; },
                    },
                    spec);
}

std::string describe(const LayerSpec& spec) {
  std::ostringstream out;
  out << kind_name(spec);
  std::visit(Overloaded{
                 [&](const Conv2dSpec& s) {
                   out << " " << s.kernel << "x" << s.kernel << "/" << s.stride << " p" << s.padding << " -> "
                       << s.out_channels << (s.bias ? "" : " (no bias)");
                 },
                 [&](const LinearSpec& s) { out << " -> " << s.out_features; },
                 [&](const MaxPoolSpec& s) { out << " " << s.kernel << "/" << s.stride << " p" << s.padding; },
                 [&](const AvgPoolSpec& s) { out << " " << s.kernel << "/" << s.stride << " p" << s.padding; },
                 [&](const DropoutSpec& s) { out << " p=" << s.probability; },
                 [&](const ShortcutPadSpec& s) { out << " /" << s.stride << " -> " << s.out_channels; },
                 [&](const LrnSpec& s) { out << " size " << s.size; },
                 [](const auto&) {},
             },
             spec);
  return out.str();
}

int input_count(const LayerSpec& spec) { return std::holds_alternative<AddSpec>(spec) ? 2 : 1; }

bool has_params(const LayerSpec& spec) {
  return std::holds_alternative<Conv2dSpec>(spec) || std::holds_alternative<LinearSpec>(spec) ||
         std::holds_alternative<BatchNormSpec>(spec);
}

Dims infer_output_dims(const LayerSpec& spec, const std::vector<Dims>& inputs) {
  BATON_CHECK(static_cast<int>(inputs.size()) == input_count(spec),
              kind_name(spec) << " takes " << input_count(spec) << " input(s) but got " << inputs.size());
  const Dims& in = inputs[0];
  return std::visit(
      Overloaded{
          [&](const Conv2dSpec& s) {
            return window_dims(in, s.out_channels, s.kernel, s.stride, s.padding, "a " + describe(spec));
          },
          [&](const LinearSpec& s) {
            require_rank(in, 2, "linear");
            return Dims{in[0], s.out_features};
          },
          [&](const MaxPoolSpec& s) {
            require_rank(in, 4, "maxpool");
            return window_dims(in, in[1], s.kernel, s.stride, s.padding, "a " + describe(spec));
          },
          [&](const AvgPoolSpec& s) {
            require_rank(in, 4, "avgpool");
            return window_dims(in, in[1], s.kernel, s.stride, s.padding, "an " + describe(spec));
          },
          [&](const GlobalAvgPoolSpec&) {
            require_rank(in, 4, "global average pooling");
            return Dims{in[0], in[1]};
          },
          [&](const FlattenSpec&) {
            require_rank(in, 4, "flatten");
            return Dims{in[0], element_count({in[1], in[2], in[3]})};
          },
          [&](const AddSpec&) {
            BATON_CHECK(inputs[0] == inputs[1], "a residual add needs equal input dims but got "
                                                    << to_string(inputs[0]) << " and " << to_string(inputs[1]));
            return in;
          },
          [&](const ShortcutPadSpec& s) {
            require_rank(in, 4, "shortcut");
            BATON_CHECK(s.out_channels >= in[1] && (s.out_channels - in[1]) % 2 == 0,
                        "an option-A shortcut pads channels equally on both sides, so it cannot map "
                            << in[1] << " to " << s.out_channels << " channels");
            return Dims{in[0], s.out_channels, (in[2] + s.stride - 1) / s.stride, (in[3] + s.stride - 1) / s.stride};
          },
          [&](const SoftmaxCrossEntropySpec&) {
            require_rank(in, 2, "softmax cross-entropy");
            return Dims{in[0]};
          },
          [&](const LrnSpec&) {
            require_rank(in, 4, "LRN");
            return in;
          },
          [&](const BatchNormSpec&) {
            BATON_CHECK(in.size() == 2 || in.size() == 4, "batch norm needs an N×C or N×C×H×W input");
            return in;
          },
          [&](const auto&) { return in; },  // relu, dropout
      },
      spec);
}

std::vector<ParamSpec> param_specs(const LayerSpec& spec, const std::vector<Dims>& inputs) {
  const Dims& in = inputs[0];
  return std::visit(Overloaded{
                        [&](const Conv2dSpec& s) {
                          int64_t fan_in = in[1] * s.kernel * s.kernel;
                          std::vector<ParamSpec> p{{"weight", {s.out_channels, in[1], s.kernel, s.kernel},
                                                    Init::he_normal, fan_in}};
                          if (s.bias) p.push_back({"bias", {s.out_channels}, Init::uniform_fan_in, fan_in});
                          return p;
                        },
                        [&](const LinearSpec& s) {
                          std::vector<ParamSpec> p{
                              {"weight", {s.out_features, in[1]}, Init::uniform_fan_in, in[1]}};
                          if (s.bias) p.push_back({"bias", {s.out_features}, Init::uniform_fan_in, in[1]});
                          return p;
                        },
                        // Scale (weight) and shift (bias) adjacent: the {2, C} block kernels read directly.
                        [&](const BatchNormSpec&) {
                          return std::vector<ParamSpec>{{"weight", {in[1]}, Init::ones}, {"bias", {in[1]}, Init::zeros}};
                        },
                        [](const auto&) { return std::vector<ParamSpec>{}; },
                    },
                    spec);
}

int64_t param_count(const LayerSpec& spec, const std::vector<Dims>& inputs) {
  int64_t count = 0;
  for (const ParamSpec& p : param_specs(spec, inputs)) count += element_count(p.dims);
  return count;
}

void init_param(const ParamSpec& param, uint64_t key, float* values) {
  const int64_t count = element_count(param.dims);
  const double fan_in = double(std::max<int64_t>(param.fan_in, 1));
  for (int64_t i = 0; i < count; ++i) {
    switch (param.init) {
      case Init::he_normal: values[i] = float(std::sqrt(2.0 / fan_in) * normal01(key, uint64_t(i))); break;
      case Init::uniform_fan_in: values[i] = float((2.0 * uniform01(key, uint64_t(i)) - 1.0) / std::sqrt(fan_in)); break;
      case Init::ones: values[i] = 1.0f; break;
      case Init::zeros: values[i] = 0.0f; break;
    }
  }
}

std::vector<ParamSpec> state_specs(const LayerSpec& spec, const std::vector<Dims>& inputs) {
  if (!std::holds_alternative<BatchNormSpec>(spec)) return {};
  const int64_t channels = inputs[0][1];
  return {{"running_mean", {channels}, Init::zeros}, {"running_var", {channels}, Init::ones}};
}

int64_t state_count(const LayerSpec& spec, const std::vector<Dims>& inputs) {
  int64_t count = 0;
  for (const ParamSpec& s : state_specs(spec, inputs)) count += element_count(s.dims);
  return count;
}

void init_state(const LayerSpec& spec, const std::vector<Dims>& inputs, float* state) {
  for (const ParamSpec& s : state_specs(spec, inputs)) {
    init_param(s, 0, state);
    state += element_count(s.dims);
  }
}

PassFlops pass_flops(const LayerSpec& spec, const std::vector<Dims>& inputs) {
  const Dims& in = inputs[0];
  Dims out = infer_output_dims(spec, inputs);
  return std::visit(Overloaded{
                        [&](const Conv2dSpec& s) {
                          double macs = double(element_count(out)) * double(in[1] * s.kernel * s.kernel);
                          return PassFlops{2 * macs, 2 * macs, 2 * macs};
                        },
                        [&](const LinearSpec&) {
                          double macs = double(element_count(out)) * double(in[1]);
                          return PassFlops{2 * macs, 2 * macs, 2 * macs};
                        },
                        [](const auto&) { return PassFlops{}; },
                    },
                    spec);
}

}  // namespace baton::layers
