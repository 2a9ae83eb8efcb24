// Every layer of every available backend (oneDNN on CPU; cuDNN/cuBLAS where a GPU is present)
// against the reference layer of the same spec: forward, backward_data and backward_weights
// (accumulated twice) on the same random data, two slots in flight; oneDNN also given nChw16c.
#include <gtest/gtest.h>

#include <cstdio>

#include "layers/cpu/dnnl_common.hpp"
#include "layers/layer.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/compare.hpp"

namespace baton::layers {
namespace {

using test::close;
using test::from_plain;
using test::random_values;
using test::to_plain;

struct Case {
  std::string name;
  LayerSpec spec;
  std::vector<Dims> inputs;
  int given_block = 1;     // the layout inputs arrive in: 1 plain, 16 nChw16c (oneDNN only)
  double tolerance = 1e-5;
  Backend backend = Backend::cpu;
};

// cuDNN's algorithms (Winograd, FFT) round differently from a direct loop: 10x oneDNN's tolerance,
// TF32 off (BATON_CUDA_TF32 unset).
constexpr double kCudaToleranceFactor = 10;

std::string case_name(const Case& c) { return std::string(backend_name(c.backend)) + "_" + c.name; }
std::string print_case(const ::testing::TestParamInfo<Case>& info) { return case_name(info.param); }
// How GoogleTest (and so ctest's test list) shows a case.
void PrintTo(const Case& c, std::ostream* out) { *out << case_name(c); }

// One layer of one backend with its own parameters, state and tensors for two slots.
struct Harness {
  Harness(const Case& c, Backend backend) : backend_(backend) {
    layer_ = make_layer(c.spec, backend);
    std::vector<TensorSpec> given;
    for (const Dims& dims : c.inputs) given.push_back(backend == Backend::cpu && dims.size() == 4
                                                          ? cpu::channel_blocked_spec(dims, c.given_block)
                                                          : TensorSpec{dims, nullptr});
    io_ = layer_->setup(given, 2);
    params_ = std::vector<float>(size_t(param_count(c.spec, c.inputs)));
    int64_t offset = 0;
    for (const ParamSpec& p : param_specs(c.spec, c.inputs)) {
      std::vector<float> values = random_values(element_count(p.dims), 7 + offset, 0.5f);
      for (float& v : values) v += p.init == Init::ones ? 1.0f : 0.0f;
      std::copy(values.begin(), values.end(), params_.begin() + offset);
      offset += element_count(p.dims);
    }
    state_.assign(size_t(state_count(c.spec, c.inputs)), 0.0f);
    if (!state_.empty()) init_state(c.spec, c.inputs, state_.data());
    grads_.assign(params_.size(), 0.0f);
  }

  std::vector<float> forward(int slot, const std::vector<std::vector<float>>& inputs, const std::vector<int32_t>& labels,
                             Phase phase = Phase::train) {
    inputs_[slot].clear();
    for (size_t k = 0; k < inputs.size(); ++k) inputs_[slot].push_back(from_plain(inputs[k], io_.inputs[k], backend_));
    outputs_[slot] = Tensor(io_.output);
    labels_[slot] = labels;
    std::vector<const Tensor*> in;
    for (const Tensor& t : inputs_[slot]) in.push_back(&t);
    layer_->forward(ForwardArgs{in, &outputs_[slot], slot, phase, ParamsView{params_.data(), 1},
                                state_.empty() ? nullptr : state_.data(), 99 + uint64_t(slot), labels_[slot].data()});
    return to_plain(outputs_[slot], backend_);
  }

  // Returns the input gradients (plain) and accumulates the weight gradients twice.
  std::vector<std::vector<float>> backward(int slot, const std::vector<float>& grad_output) {
    Tensor dy = from_plain(grad_output, io_.output, backend_);
    std::vector<Tensor> dx;
    for (const TensorSpec& spec : io_.inputs) dx.emplace_back(spec);
    for (Tensor& t : dx) t.fill(123.0f);  // backward_data must overwrite
    std::vector<const Tensor*> in;
    std::vector<Tensor*> grads;
    for (const Tensor& t : inputs_[slot]) in.push_back(&t);
    for (Tensor& t : dx) grads.push_back(&t);
    BackwardArgs args{in, &outputs_[slot], &dy, grads, slot, ParamsView{params_.data(), 1}, grads_.data(), 0.37f,
                      labels_[slot].data()};
    layer_->backward_data(args);
    layer_->backward_weights(args);
    layer_->backward_weights(args);
    std::vector<std::vector<float>> result;
    for (const Tensor& t : dx) result.push_back(to_plain(t, backend_));
    return result;
  }

  Backend backend_;
  std::unique_ptr<Layer> layer_;
  LayerIO io_;
  std::vector<float> params_, state_, grads_;
  std::vector<Tensor> inputs_[2];
  Tensor outputs_[2];
  std::vector<int32_t> labels_[2];
};

class LayerKernels : public ::testing::TestWithParam<Case> {};

TEST_P(LayerKernels, MatchReferenceInEveryPass) {
  const Case& c = GetParam();
  BATON_SKIP_UNLESS_AVAILABLE(c.backend);
  Harness kernels(c, c.backend), ref(c, Backend::reference);
  std::printf("%s: %s reads %s, writes %s\n", c.name.c_str(), backend_name(c.backend),
              kernels.io_.inputs[0].layout_name().c_str(), kernels.io_.output.layout_name().c_str());
  const Dims out = infer_output_dims(c.spec, c.inputs);
  const int64_t classes = out.size() == 1 ? c.inputs[0][1] : 1;
  std::vector<std::vector<float>> x[2];
  std::vector<int32_t> labels[2];
  for (int slot = 0; slot < 2; ++slot) {
    for (size_t k = 0; k < c.inputs.size(); ++k)
      x[slot].push_back(random_values(element_count(c.inputs[k]), 1000 * slot + k, 1.5f));
    for (int64_t n = 0; n < c.inputs[0][0]; ++n) labels[slot].push_back(int32_t((n * 7 + slot) % classes));
  }
  // Two slots in flight: slot 1's forward must not disturb what slot 0's backward reads.
  for (int slot = 0; slot < 2; ++slot) {
    EXPECT_TRUE(close("forward slot " + std::to_string(slot), kernels.forward(slot, x[slot], labels[slot]),
                      ref.forward(slot, x[slot], labels[slot]), c.tolerance));
  }
  std::vector<float> dy = random_values(element_count(out), 555, 1.0f);
  for (int slot : {0, 1}) {
    auto got_dx = kernels.backward(slot, dy), ref_dx = ref.backward(slot, dy);
    for (size_t k = 0; k < got_dx.size(); ++k)
      EXPECT_TRUE(close("backward_data slot " + std::to_string(slot) + " input " + std::to_string(k), got_dx[k],
                        ref_dx[k], c.tolerance));
  }
  if (!kernels.grads_.empty()) {
    EXPECT_TRUE(close("backward_weights (accumulated 4x)", kernels.grads_, ref.grads_, c.tolerance));
  }
  if (!kernels.state_.empty()) {
    EXPECT_TRUE(close("running statistics", kernels.state_, ref.state_, c.tolerance));
  }
  if (!kernels.state_.empty()) {
    EXPECT_TRUE(close("eval forward", kernels.forward(0, x[0], labels[0], Phase::eval),
                      ref.forward(0, x[0], labels[0], Phase::eval), c.tolerance));
  }
}

std::vector<Case> cases() {
  const Dims image{4, 16, 9, 9}, small{3, 3, 8, 8}, features{6, 40};
  std::vector<Case> all{
      {"conv3x3", Conv2dSpec{32, 3, 1, 1, true}, {image}},
      {"conv3x3_stride2_nobias", Conv2dSpec{16, 3, 2, 1, false}, {image}},
      {"conv5x5_first_layer", Conv2dSpec{6, 5, 1, 2, true}, {small}},
      {"conv5x5_six_channels", Conv2dSpec{16, 5, 1, 0, true}, {{2, 6, 12, 12}}},
      {"conv1x1_stride2", Conv2dSpec{32, 1, 2, 0, false}, {image}},
      {"conv3x3_128_8x8", Conv2dSpec{128, 3, 1, 1, false}, {{3, 128, 8, 8}}},
      {"conv3x3_s2_64_16x16", Conv2dSpec{128, 3, 2, 1, false}, {{3, 64, 16, 16}}},
      {"conv1x1_s2_64_16x16", Conv2dSpec{128, 1, 2, 0, false}, {{3, 64, 16, 16}}},
      {"bn_128_8x8", BatchNormSpec{}, {{3, 128, 8, 8}}, 1, 1e-4},
      {"conv7x7_stride2", Conv2dSpec{16, 7, 2, 3, false}, {{2, 3, 20, 20}}},
      {"linear", LinearSpec{17, true}, {features}},
      {"linear_nobias", LinearSpec{10, false}, {features}},
      {"relu", ReluSpec{}, {image}},
      {"maxpool2", MaxPoolSpec{2, 2}, {image}},
      {"maxpool3_stride2_pad1", MaxPoolSpec{3, 2, 1}, {image}},
      {"maxpool3_tiled", MaxPoolSpec{3, 3}, {{2, 16, 10, 11}}},
      {"avgpool3_stride2_pad1", AvgPoolSpec{3, 2, 1}, {image}},
      {"global_avgpool", GlobalAvgPoolSpec{}, {image}},
      {"batchnorm", BatchNormSpec{}, {image}, 1, 1e-4},
      {"batchnorm_features", BatchNormSpec{}, {features}, 1, 1e-4},
      {"dropout", DropoutSpec{0.5f}, {features}},
      {"flatten", FlattenSpec{}, {image}},
      {"add", AddSpec{}, {image, image}},
      {"shortcut_pad", ShortcutPadSpec{32, 2}, {image}},
      {"shortcut_pad_stride1", ShortcutPadSpec{48, 1}, {image}},
      {"lrn", LrnSpec{}, {image}},
      {"softmax_xent", SoftmaxCrossEntropySpec{}, {{8, 10}}},
  };
  std::vector<Case> per_backend;
  for (const Case& c : all) {
    per_backend.push_back(c);
    if (c.inputs[0].size() == 4 && c.inputs[0][1] % 16 == 0) {
      Case blocked = c;
      blocked.name += "_given_nChw16c";
      blocked.given_block = 16;
      per_backend.push_back(blocked);
    }
    Case on_gpu = c;
    on_gpu.backend = Backend::cuda;
    on_gpu.tolerance *= kCudaToleranceFactor;
    per_backend.push_back(on_gpu);
  }
  return per_backend;
}

INSTANTIATE_TEST_SUITE_P(AllKinds, LayerKernels, ::testing::ValuesIn(cases()), print_case);

}  // namespace
}  // namespace baton::layers
