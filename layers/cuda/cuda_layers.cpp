// The CUDA backend's layers: cuDNN (its legacy, one-call-per-op API; see the README for why) for
// convolution, pooling, batch norm and LRN, cuBLAS for linear layers, baton's own kernels for the
// rest. Activations live in device memory as plain NCHW; parameters, running statistics, labels
// and weight gradients cross to and from the host's flat buffers (DeviceParams, HostGradients).
#include <algorithm>
#include <utility>

#include "layers/checked_layer.hpp"
#include "layers/cuda/cuda_common.hpp"
#include "layers/cuda/cuda_kernels.hpp"
#include "runtime/base/device_memory.hpp"
#include "runtime/base/overloaded.hpp"

namespace baton::layers {
namespace {

using namespace cuda;

constexpr float kOne = 1.0f, kZero = 0.0f;

// The CUDA family: plain NCHW tensors in device memory (given ones of any layout are converted by
// the network).
class CudaLayer : public CheckedLayer {
 public:
  using CheckedLayer::CheckedLayer;

 protected:
  const char* family() const override { return "CUDA"; }
  TensorSpec spec_for(const Dims& dims) const override { return device_spec(dims); }
  bool keeps(const TensorSpec& tensor) const override { return tensor.on_device(); }
};

// ---- convolution: cuDNN, algorithms by its heuristics, deterministic ones for the backward ----

template <class Perf>
Perf first_usable(const std::vector<Perf>& candidates, int returned, bool deterministic, const char* pass) {
  for (int i = 0; i < returned; ++i) {
    const Perf& p = candidates[size_t(i)];
    if (p.status == CUDNN_STATUS_SUCCESS && (!deterministic || p.determinism == CUDNN_DETERMINISTIC)) return p;
  }
  BATON_FAIL("cuDNN offers no " << (deterministic ? "deterministic " : "") << "algorithm for this convolution's "
                                << pass);
}

class ConvLayer final : public CudaLayer {
 public:
  ConvLayer(LayerSpec spec, Conv2dSpec conv) : CudaLayer(std::move(spec)), conv_(conv) {}
  ~ConvLayer() override {
    cudnnDestroyFilterDescriptor(filter_);
    cudnnDestroyConvolutionDescriptor(convolution_);
  }

  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    const float* w = params_->get(args.params);
    float* y = output(args);
    BATON_CHECK_CUDNN(cudnnConvolutionForward(cudnn(), &kOne, x_->get(), input(args, 0), filter_, w, convolution_,
                                              forward_algorithm_, workspace_.reserve(workspace_bytes_),
                                              workspace_bytes_, &kZero, y_->get(), y));
    if (conv_.bias) BATON_CHECK_CUDNN(cudnnAddTensor(cudnn(), &kOne, bias_->get(), w + weight_count_, &kOne, y_->get(), y));
  }

  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    float* dx = grad_input(args, 0);
    if (!dx) return;
    BATON_CHECK_CUDNN(cudnnConvolutionBackwardData(cudnn(), &kOne, filter_, params_->get(args.params), y_->get(),
                                                   grad_output(args), convolution_, data_algorithm_,
                                                   workspace_.reserve(workspace_bytes_), workspace_bytes_, &kZero,
                                                   x_->get(), dx));
  }

  void backward_weights(const BackwardArgs& args) override {
    checked_slot(args.slot);
    float* dw = grads_->scratch();
    BATON_CHECK_CUDNN(cudnnConvolutionBackwardFilter(cudnn(), &kOne, x_->get(), input(args, 0), y_->get(),
                                                     grad_output(args), convolution_, filter_algorithm_,
                                                     workspace_.reserve(workspace_bytes_), workspace_bytes_, &kZero,
                                                     filter_, dw));
    if (conv_.bias)
      BATON_CHECK_CUDNN(cudnnConvolutionBackwardBias(cudnn(), &kOne, y_->get(), grad_output(args), &kZero, bias_->get(),
                                                     dw + weight_count_));
    grads_->add_to(args.grads);
  }

 private:
  void prepare() override {
    const Dims& x = in_dims();
    BATON_CHECK(x.size() == 4, "conv2d needs an N×C×H×W input but got " << to_string(x));
    x_ = std::make_unique<TensorDescriptor>(x);
    y_ = std::make_unique<TensorDescriptor>(out_dims());
    bias_ = std::make_unique<TensorDescriptor>(Dims{1, conv_.out_channels, 1, 1});
    weight_count_ = conv_.out_channels * x[1] * conv_.kernel * conv_.kernel;
    params_ = std::make_unique<DeviceParams>(weight_count_ + (conv_.bias ? conv_.out_channels : 0));
    grads_ = std::make_unique<HostGradients>(weight_count_ + (conv_.bias ? conv_.out_channels : 0));
    BATON_CHECK_CUDNN(cudnnCreateFilterDescriptor(&filter_));
    BATON_CHECK_CUDNN(cudnnSetFilter4dDescriptor(filter_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(conv_.out_channels),
                                                 int(x[1]), int(conv_.kernel), int(conv_.kernel)));
    BATON_CHECK_CUDNN(cudnnCreateConvolutionDescriptor(&convolution_));
    BATON_CHECK_CUDNN(cudnnSetConvolution2dDescriptor(convolution_, int(conv_.padding), int(conv_.padding),
                                                      int(conv_.stride), int(conv_.stride), 1, 1,
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    BATON_CHECK_CUDNN(cudnnSetConvolutionMathType(convolution_, tf32_allowed() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    choose_algorithms();
  }

  void choose_algorithms() {
    int returned = 0;
    std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    BATON_CHECK_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(cudnn(), x_->get(), filter_, convolution_, y_->get(),
                                                             int(fwd.size()), &returned, fwd.data()));
    const auto f = first_usable(fwd, returned, false, "forward");
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
    BATON_CHECK_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn(), filter_, y_->get(), convolution_, x_->get(),
                                                                  int(data.size()), &returned, data.data()));
    const auto d = first_usable(data, returned, true, "data gradient");
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    BATON_CHECK_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn(), x_->get(), y_->get(), convolution_,
                                                                    filter_, int(filter.size()), &returned,
                                                                    filter.data()));
    const auto w = first_usable(filter, returned, true, "weight gradient");
    forward_algorithm_ = f.algo;
    data_algorithm_ = d.algo;
    filter_algorithm_ = w.algo;
    workspace_bytes_ = std::max<size_t>({f.memory, d.memory, w.memory});
  }

  Conv2dSpec conv_;
  std::unique_ptr<TensorDescriptor> x_, y_, bias_;
  cudnnFilterDescriptor_t filter_ = nullptr;
  cudnnConvolutionDescriptor_t convolution_ = nullptr;
  cudnnConvolutionFwdAlgo_t forward_algorithm_{};
  cudnnConvolutionBwdDataAlgo_t data_algorithm_{};
  cudnnConvolutionBwdFilterAlgo_t filter_algorithm_{};
  size_t workspace_bytes_ = 0;
  Workspace workspace_;
  int64_t weight_count_ = 0;
  std::unique_ptr<DeviceParams> params_;
  std::unique_ptr<HostGradients> grads_;
};

// ---- linear: y = x Wᵀ + b with cuBLAS (column-major views of the row-major buffers) ------------

class LinearLayer final : public CudaLayer {
 public:
  explicit LinearLayer(const LinearSpec& linear) : CudaLayer(linear), linear_(linear) {}

  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    const float* w = params_->get(args.params);
    float* y = output(args);
    // yᵀ (out×N) = W (out×in) · xᵀ (in×N); W's buffer is Wᵀ column-major.
    BATON_CHECK_CUBLAS(cublasSgemm(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, int(outputs()), int(rows()), int(inputs()), &kOne,
                                   w, int(inputs()), input(args, 0), int(inputs()), &kZero, y, int(outputs())));
    if (linear_.bias) add_bias_rows(w + weight_count(), y, rows(), outputs());
  }

  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    float* dx = grad_input(args, 0);
    if (!dx) return;
    // dxᵀ (in×N) = Wᵀ (in×out) · dyᵀ (out×N)
    BATON_CHECK_CUBLAS(cublasSgemm(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, int(inputs()), int(rows()), int(outputs()), &kOne,
                                   params_->get(args.params), int(inputs()), grad_output(args), int(outputs()), &kZero,
                                   dx, int(inputs())));
  }

  void backward_weights(const BackwardArgs& args) override {
    checked_slot(args.slot);
    float* dw = grads_->scratch();
    // dWᵀ (in×out) = xᵀ (in×N) · dy (N×out)
    BATON_CHECK_CUBLAS(cublasSgemm(cublas(), CUBLAS_OP_N, CUBLAS_OP_T, int(inputs()), int(outputs()), int(rows()), &kOne,
                                   input(args, 0), int(inputs()), grad_output(args), int(outputs()), &kZero, dw,
                                   int(inputs())));
    if (linear_.bias) {
      device::fill(dw + weight_count(), size_t(outputs()), 0.0f);
      add_column_sums(grad_output(args), dw + weight_count(), rows(), outputs());
    }
    grads_->add_to(args.grads);
  }

 private:
  void prepare() override {
    BATON_CHECK(in_dims().size() == 2, "linear needs an N×F input but got " << to_string(in_dims()));
    const int64_t count = weight_count() + (linear_.bias ? outputs() : 0);
    params_ = std::make_unique<DeviceParams>(count);
    grads_ = std::make_unique<HostGradients>(count);
  }
  int64_t rows() const { return in_dims()[0]; }
  int64_t inputs() const { return in_dims()[1]; }
  int64_t outputs() const { return linear_.out_features; }
  int64_t weight_count() const { return outputs() * inputs(); }

  LinearSpec linear_;
  std::unique_ptr<DeviceParams> params_;
  std::unique_ptr<HostGradients> grads_;
};

// ---- max and average pooling: cuDNN --------------------------------------------------------------

class PoolLayer final : public CudaLayer {
 public:
  PoolLayer(LayerSpec spec, cudnnPoolingMode_t mode, int64_t kernel, int64_t stride, int64_t padding)
      : CudaLayer(std::move(spec)), mode_(mode), kernel_(kernel), stride_(stride), padding_(padding) {}
  ~PoolLayer() override { cudnnDestroyPoolingDescriptor(pooling_); }

  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    BATON_CHECK_CUDNN(cudnnPoolingForward(cudnn(), pooling_, &kOne, x_->get(), input(args, 0), &kZero, y_->get(),
                                          output(args)));
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dx = grad_input(args, 0))
      BATON_CHECK_CUDNN(cudnnPoolingBackward(cudnn(), pooling_, &kOne, y_->get(), output(args), y_->get(),
                                             grad_output(args), x_->get(), input(args, 0), &kZero, x_->get(), dx));
  }

 private:
  void prepare() override {
    x_ = std::make_unique<TensorDescriptor>(in_dims());
    y_ = std::make_unique<TensorDescriptor>(out_dims());
    BATON_CHECK_CUDNN(cudnnCreatePoolingDescriptor(&pooling_));
    BATON_CHECK_CUDNN(cudnnSetPooling2dDescriptor(pooling_, mode_, CUDNN_NOT_PROPAGATE_NAN, int(kernel_), int(kernel_),
                                                  int(padding_), int(padding_), int(stride_), int(stride_)));
    int n = 0, c = 0, h = 0, w = 0;
    BATON_CHECK_CUDNN(cudnnGetPooling2dForwardOutputDim(pooling_, x_->get(), &n, &c, &h, &w));
    BATON_CHECK((Dims{n, c, h, w}) == out_dims(), "cuDNN pools " << to_string(in_dims()) << " to " << n << "x" << c << "x"
                                                                 << h << "x" << w << ", not to " << to_string(out_dims()));
  }

  cudnnPoolingMode_t mode_;
  int64_t kernel_, stride_, padding_;
  std::unique_ptr<TensorDescriptor> x_, y_;
  cudnnPoolingDescriptor_t pooling_ = nullptr;
};

// ---- batch norm: cuDNN spatial mode (per channel over N·H·W; per feature over N) ---------------
// The backward computes the input and parameter gradients in one call: backward_data keeps the
// slot's parameter gradients for backward_weights, which computes them itself if no data
// gradient was asked for.

class BatchNormLayer final : public CudaLayer {
 public:
  explicit BatchNormLayer(const BatchNormSpec& norm) : CudaLayer(norm), norm_(norm) {}

  void forward(const ForwardArgs& args) override {
    Slot& slot = slots_[size_t(checked_slot(args.slot))];
    const float* gamma = params_->get(args.params);
    slot.trained = args.phase == Phase::train;
    slot.grads_ready = false;
    if (!slot.trained) {
      BATON_CHECK(args.state != nullptr, "batch norm in eval phase needs its running statistics");
      device::upload(args.state, running_.data(), size_t(2 * channels()));
      BATON_CHECK_CUDNN(cudnnBatchNormalizationForwardInference(
          cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, x_->get(), input(args, 0), x_->get(), output(args),
          stats_->get(), gamma, gamma + channels(), running_.data(), running_.data() + channels(), norm_.epsilon));
      return;
    }
    if (args.state) device::upload(args.state, running_.data(), size_t(2 * channels()));
    BATON_CHECK_CUDNN(cudnnBatchNormalizationForwardTraining(
        cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, x_->get(), input(args, 0), x_->get(), output(args),
        stats_->get(), gamma, gamma + channels(), norm_.momentum, args.state ? running_.data() : nullptr,
        args.state ? running_.data() + channels() : nullptr, norm_.epsilon, slot.saved.data(),
        slot.saved.data() + channels()));
    if (args.state) device::download(running_.data(), args.state, size_t(2 * channels()));
  }

  void backward_data(const BackwardArgs& args) override {
    Slot& slot = trained_slot(args.slot);
    float* dx = grad_input(args, 0);
    if (!dx) return;
    gradients(args, slot, dx);
    slot.grads_ready = true;
  }

  void backward_weights(const BackwardArgs& args) override {
    Slot& slot = trained_slot(args.slot);
    if (!slot.grads_ready) gradients(args, slot, unused_dx_.data());
    device::copy(slot.param_grads.data(), grads_->scratch(), size_t(2 * channels()));
    grads_->add_to(args.grads);
  }

 private:
  struct Slot {
    bool trained = false, grads_ready = false;
    Tensor saved;        // [mean C][inverse std C] of this slot's training forward
    Tensor param_grads;  // [dgamma C][dbeta C]
  };

  void prepare() override {
    x_ = std::make_unique<TensorDescriptor>(in_dims());
    stats_ = std::make_unique<TensorDescriptor>(Dims{1, channels(), 1, 1});
    params_ = std::make_unique<DeviceParams>(2 * channels());
    grads_ = std::make_unique<HostGradients>(2 * channels());
    running_ = device_tensor(2 * channels());
    slots_.resize(size_t(slots()));
    for (Slot& slot : slots_) {
      slot.saved = device_tensor(2 * channels());
      slot.param_grads = device_tensor(2 * channels());
    }
  }

  void gradients(const BackwardArgs& args, Slot& slot, float* dx) {
    if (unused_dx_.empty()) unused_dx_ = device_tensor(in_count());
    BATON_CHECK_CUDNN(cudnnBatchNormalizationBackward(
        cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, x_->get(), input(args, 0), x_->get(),
        grad_output(args), x_->get(), dx, stats_->get(), args.params.data ? params_->get(args.params) : params_->last(),
        slot.param_grads.data(),
        slot.param_grads.data() + channels(), norm_.epsilon, slot.saved.data(), slot.saved.data() + channels()));
  }

  Slot& trained_slot(int index) {
    Slot& slot = slots_[size_t(checked_slot(index))];
    BATON_CHECK(slot.trained, "batch norm supports backward only after a training-phase forward of the same slot");
    return slot;
  }
  int64_t channels() const { return in_dims()[1]; }

  BatchNormSpec norm_;
  std::unique_ptr<TensorDescriptor> x_, stats_;
  std::unique_ptr<DeviceParams> params_;
  std::unique_ptr<HostGradients> grads_;
  Tensor running_, unused_dx_;
  std::vector<Slot> slots_;
};

// ---- LRN across channels: cuDNN (its alpha is divided by the window, like ours) ----------------

class LrnLayer final : public CudaLayer {
 public:
  explicit LrnLayer(const LrnSpec& lrn) : CudaLayer(lrn), lrn_(lrn) {}
  ~LrnLayer() override { cudnnDestroyLRNDescriptor(descriptor_); }

  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    BATON_CHECK_CUDNN(cudnnLRNCrossChannelForward(cudnn(), descriptor_, CUDNN_LRN_CROSS_CHANNEL_DIM1, &kOne, x_->get(),
                                                  input(args, 0), &kZero, x_->get(), output(args)));
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dx = grad_input(args, 0))
      BATON_CHECK_CUDNN(cudnnLRNCrossChannelBackward(cudnn(), descriptor_, CUDNN_LRN_CROSS_CHANNEL_DIM1, &kOne,
                                                     x_->get(), output(args), x_->get(), grad_output(args), x_->get(),
                                                     input(args, 0), &kZero, x_->get(), dx));
  }

 private:
  void prepare() override {
    x_ = std::make_unique<TensorDescriptor>(in_dims());
    BATON_CHECK_CUDNN(cudnnCreateLRNDescriptor(&descriptor_));
    BATON_CHECK_CUDNN(cudnnSetLRNDescriptor(descriptor_, unsigned(lrn_.size), lrn_.alpha, lrn_.beta, lrn_.k));
  }

  LrnSpec lrn_;
  std::unique_ptr<TensorDescriptor> x_;
  cudnnLRNDescriptor_t descriptor_ = nullptr;
};

// ---- element-wise and reshaping layers: baton's kernels ----------------------------------------

class ReluLayer final : public CudaLayer {
 public:
  ReluLayer() : CudaLayer(ReluSpec{}) {}
  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    relu_forward(input(args, 0), output(args), in_count());
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dx = grad_input(args, 0)) relu_backward(output(args), grad_output(args), dx, in_count());
  }
};

class GlobalAvgPoolLayer final : public CudaLayer {
 public:
  GlobalAvgPoolLayer() : CudaLayer(GlobalAvgPoolSpec{}) {}
  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    global_avgpool_forward(input(args, 0), output(args), out_count(), in_count() / out_count());
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dx = grad_input(args, 0))
      global_avgpool_backward(grad_output(args), dx, out_count(), in_count() / out_count());
  }
};

class FlattenLayer final : public CudaLayer {
 public:
  FlattenLayer() : CudaLayer(FlattenSpec{}) {}
  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    device::copy(input(args, 0), output(args), size_t(in_count()));
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dx = grad_input(args, 0)) device::copy(grad_output(args), dx, size_t(in_count()));
  }
};

class AddLayer final : public CudaLayer {
 public:
  AddLayer() : CudaLayer(AddSpec{}) {}
  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    sum_masked(input(args, 0), input(args, 1), nullptr, output(args), in_count());
  }
  // Both input gradients equal the output's; a null one is not needed.
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    for (size_t k = 0; k < 2; ++k)
      if (float* dx = grad_input(args, k)) device::copy(grad_output(args), dx, size_t(in_count()));
  }
};

class ShortcutPadLayer final : public CudaLayer {
 public:
  explicit ShortcutPadLayer(const ShortcutPadSpec& shortcut) : CudaLayer(shortcut), shortcut_(shortcut) {}
  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    shortcut_pad_forward(shape(), input(args, 0), output(args));
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dx = grad_input(args, 0)) shortcut_pad_backward(shape(), grad_output(args), dx);
  }

 private:
  ShortcutShape shape() const {
    const Dims& x = in_dims();
    const Dims& y = out_dims();
    return {x[0], x[1], x[2], x[3], y[1], y[2], y[3], shortcut_.stride};
  }
  ShortcutPadSpec shortcut_;
};

// The slot's phase and random key decide its mask, which backward_data applies again.
class DropoutLayer final : public CudaLayer {
 public:
  explicit DropoutLayer(const DropoutSpec& dropout) : CudaLayer(dropout), dropout_(dropout) {}
  void forward(const ForwardArgs& args) override {
    saved_[size_t(checked_slot(args.slot))] = {args.phase, args.random_key};
    apply(saved_[size_t(args.slot)], input(args, 0), output(args));
  }
  void backward_data(const BackwardArgs& args) override {
    const Saved& saved = saved_[size_t(checked_slot(args.slot))];
    if (float* dx = grad_input(args, 0)) apply(saved, grad_output(args), dx);
  }

 private:
  struct Saved {
    Phase phase = Phase::eval;
    uint64_t random_key = 0;
  };
  void prepare() override {
    BATON_CHECK(dropout_.probability >= 0.0f && dropout_.probability <= 1.0f,
                "dropout probability must lie in [0, 1] but is " << dropout_.probability);
    saved_.assign(size_t(slots()), Saved{});
  }
  void apply(const Saved& saved, const float* in, float* out) const {
    if (saved.phase == Phase::eval) device::copy(in, out, size_t(in_count()));
    else cuda::dropout(dropout_.probability, saved.random_key, in, out, in_count());
  }

  DropoutSpec dropout_;
  std::vector<Saved> saved_;
};

// Labels arrive in host memory: checked there, then copied to the slot's device buffer.
class SoftmaxXentLayer final : public CudaLayer {
 public:
  SoftmaxXentLayer() : CudaLayer(SoftmaxCrossEntropySpec{}) {}
  void forward(const ForwardArgs& args) override {
    const int32_t* labels = upload_labels(checked_slot(args.slot), args.labels);
    softmax_xent_forward(input(args, 0), labels, output(args), samples(), classes());
  }
  void backward_data(const BackwardArgs& args) override {
    const int32_t* labels = upload_labels(checked_slot(args.slot), args.labels);
    if (float* dlogits = grad_input(args, 0))
      softmax_xent_backward(input(args, 0), labels, args.loss_scale, dlogits, samples(), classes());
  }

 private:
  void prepare() override {
    labels_.clear();
    for (int s = 0; s < slots(); ++s) labels_.push_back(device_tensor(samples()));  // int32 in float-sized cells
  }
  const int32_t* upload_labels(int slot, const int32_t* host) {
    BATON_CHECK(host != nullptr, "softmax cross-entropy was given no labels");
    for (int64_t n = 0; n < samples(); ++n)
      BATON_CHECK(host[n] >= 0 && host[n] < classes(),
                  "sample " << n << " has label " << host[n] << " but the model has " << classes() << " classes");
    auto* device_labels = reinterpret_cast<int32_t*>(labels_[size_t(slot)].data());
    device::upload_bytes(host, device_labels, size_t(samples()) * sizeof(int32_t));
    return device_labels;
  }
  int64_t samples() const { return in_dims()[0]; }
  int64_t classes() const { return in_dims()[1]; }

  std::vector<Tensor> labels_;
};

}  // namespace

std::unique_ptr<Layer> make_cuda_layer(const LayerSpec& spec) {
  return std::visit(
      Overloaded{
          [&](const Conv2dSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<ConvLayer>(spec, s); },
          [&](const LinearSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<LinearLayer>(s); },
          [&](const ReluSpec&) -> std::unique_ptr<Layer> { return std::make_unique<ReluLayer>(); },
          [&](const MaxPoolSpec& s) -> std::unique_ptr<Layer> {
            return std::make_unique<PoolLayer>(spec, CUDNN_POOLING_MAX_DETERMINISTIC, s.kernel, s.stride, s.padding);
          },
          [&](const AvgPoolSpec& s) -> std::unique_ptr<Layer> {
            return std::make_unique<PoolLayer>(spec, CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING, s.kernel, s.stride,
                                               s.padding);
          },
          [&](const GlobalAvgPoolSpec&) -> std::unique_ptr<Layer> { return std::make_unique<GlobalAvgPoolLayer>(); },
          [&](const BatchNormSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<BatchNormLayer>(s); },
          [&](const DropoutSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<DropoutLayer>(s); },
          [&](const FlattenSpec&) -> std::unique_ptr<Layer> { return std::make_unique<FlattenLayer>(); },
          [&](const AddSpec&) -> std::unique_ptr<Layer> { return std::make_unique<AddLayer>(); },
          [&](const ShortcutPadSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<ShortcutPadLayer>(s); },
          [&](const LrnSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<LrnLayer>(s); },
          [&](const SoftmaxCrossEntropySpec&) -> std::unique_ptr<Layer> { return std::make_unique<SoftmaxXentLayer>(); },
      },
      spec);
}

}  // namespace baton::layers
