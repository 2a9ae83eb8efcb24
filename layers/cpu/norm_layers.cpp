// Batch normalization and LRN on oneDNN, both in their producer's layout. Batch norm keeps each
// slot's batch mean and variance (and its scale-shift gradient, computed with the data gradient
// and accumulated by backward_weights); running statistics use the unbiased variance, as PyTorch.
#include "layers/cpu/cpu_layers.hpp"

namespace baton::layers::cpu {
namespace {

using dnnl::normalization_flags;
using dnnl::prop_kind;

class BatchNorm final : public Layer {
 public:
  explicit BatchNorm(const BatchNormSpec& spec) : spec_(spec) {}

  Absorbed absorb_relu(ReluSide side) override {
    if (side != ReluSide::after) return Absorbed::no;
    relu_ = true;
    return Absorbed::both_passes;
  }

  LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) override {
    const Dims& dims = inputs[0].dims;
    channels_ = dims[1];
    per_channel_ = element_count(dims) / channels_;
    data_ = desc_of(inputs[0]);
    auto flags = normalization_flags::use_scale_shift;
    if (relu_) flags |= normalization_flags::fuse_norm_relu;
    dnnl::batch_normalization_forward::primitive_desc train_pd(
        {prop_kind::forward_training, data_, spec_.epsilon, flags}, engine());
    dnnl::batch_normalization_forward::primitive_desc eval_pd(
        {prop_kind::forward_inference, data_, spec_.epsilon, flags | normalization_flags::use_global_stats}, engine());
    dnnl::batch_normalization_backward::primitive_desc backward_pd(
        {prop_kind::backward, data_, data_, spec_.epsilon, flags}, engine(), train_pd);
    train_ = dnnl::batch_normalization_forward(train_pd);
    eval_ = dnnl::batch_normalization_forward(eval_pd);
    backward_ = dnnl::batch_normalization_backward(backward_pd);
    stat_ = train_pd.mean_desc();
    scale_shift_ = plain_desc({2, channels_});
    if (relu_) relu_masks_ = slot_buffers(train_pd.workspace_desc(), slots);
    workspace_ = train_pd.workspace_desc();
    means_ = slot_buffers(stat_, slots);
    variances_ = slot_buffers(stat_, slots);
    scale_shift_grads_ = slot_buffers(scale_shift_, slots);
    return LayerIO{{inputs[0]}, inputs[0]};
  }

  void forward(const ForwardArgs& a) override {
    bool training = a.phase == Phase::train;
    float* mean = training ? means_[a.slot].data() : a.state;
    float* variance = training ? variances_[a.slot].data() : a.state + channels_;
    Args args{{DNNL_ARG_SRC, wrap(data_, a.inputs[0]->data())},
              {DNNL_ARG_MEAN, wrap(stat_, mean)},
              {DNNL_ARG_VARIANCE, wrap(stat_, variance)},
              {DNNL_ARG_SCALE_SHIFT, wrap(scale_shift_, a.params.data)},
              {DNNL_ARG_DST, wrap(data_, a.output->data())}};
    if (relu_ && training) args.emplace(DNNL_ARG_WORKSPACE, wrap(workspace_, relu_masks_[a.slot].data()));
    execute(training ? train_ : eval_, args);
    if (training) update_running_statistics(mean, variance, a.state);
  }

  // Computes the scale-shift gradient too: it falls out of the same reductions.
  void backward_data(const BackwardArgs& a) override {
    Tensor* grad_input = a.grad_inputs[0];
    if (grad_input == nullptr) {
      if (unneeded_grad_.empty()) unneeded_grad_ = Tensor(a.inputs[0]->spec());
      grad_input = &unneeded_grad_;
    }
    Args args{{DNNL_ARG_SRC, wrap(data_, a.inputs[0]->data())},
              {DNNL_ARG_MEAN, wrap(stat_, means_[a.slot].data())},
              {DNNL_ARG_VARIANCE, wrap(stat_, variances_[a.slot].data())},
              {DNNL_ARG_DIFF_DST, wrap(data_, a.grad_output->data())},
              {DNNL_ARG_SCALE_SHIFT, wrap(scale_shift_, a.params.data)},
              {DNNL_ARG_DIFF_SRC, wrap(data_, grad_input->data())},
              {DNNL_ARG_DIFF_SCALE_SHIFT, wrap(scale_shift_, scale_shift_grads_[a.slot].data())}};
    if (relu_) args.emplace(DNNL_ARG_WORKSPACE, wrap(workspace_, relu_masks_[a.slot].data()));
    execute(backward_, args);
  }

  void backward_weights(const BackwardArgs& a) override {
    const float* slot_grads = scale_shift_grads_[a.slot].data();
    for (int64_t i = 0; i < 2 * channels_; ++i) a.grads[i] += slot_grads[i];
  }

 private:
  void update_running_statistics(const float* mean, const float* variance, float* state) const {
    const float m = spec_.momentum;
    const float unbiased = per_channel_ > 1 ? float(per_channel_) / float(per_channel_ - 1) : 1.0f;
    for (int64_t c = 0; c < channels_; ++c) {
      state[c] = (1 - m) * state[c] + m * mean[c];
      state[channels_ + c] = (1 - m) * state[channels_ + c] + m * variance[c] * unbiased;
    }
  }

  BatchNormSpec spec_;
  bool relu_ = false;  // the following ReLU is applied here (fuse_norm_relu)
  int64_t channels_ = 0, per_channel_ = 0;
  memory::desc data_, stat_, scale_shift_, workspace_;
  std::vector<Tensor> relu_masks_;
  dnnl::primitive train_, eval_, backward_;
  std::vector<Tensor> means_, variances_, scale_shift_grads_;
  Tensor unneeded_grad_;
};

class Lrn final : public Layer {
 public:
  explicit Lrn(const LrnSpec& spec) : spec_(spec) {}

  LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) override {
    data_ = desc_of(inputs[0]);
    auto kind = dnnl::algorithm::lrn_across_channels;
    dnnl::lrn_forward::primitive_desc forward_pd(
        {prop_kind::forward_training, kind, data_, spec_.size, spec_.alpha, spec_.beta, spec_.k}, engine());
    dnnl::lrn_backward::primitive_desc backward_pd({kind, data_, data_, spec_.size, spec_.alpha, spec_.beta, spec_.k},
                                                   engine(), forward_pd);
    forward_ = dnnl::lrn_forward(forward_pd);
    backward_ = dnnl::lrn_backward(backward_pd);
    workspace_ = forward_pd.workspace_desc();
    workspaces_ = slot_buffers(workspace_, slots);
    return LayerIO{{inputs[0]}, inputs[0]};
  }

  void forward(const ForwardArgs& a) override {
    execute(forward_, {{DNNL_ARG_SRC, wrap(data_, a.inputs[0]->data())},
                       {DNNL_ARG_DST, wrap(data_, a.output->data())},
                       {DNNL_ARG_WORKSPACE, wrap(workspace_, workspaces_[a.slot].data())}});
  }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] == nullptr) return;
    execute(backward_, {{DNNL_ARG_SRC, wrap(data_, a.inputs[0]->data())},
                        {DNNL_ARG_DIFF_DST, wrap(data_, a.grad_output->data())},
                        {DNNL_ARG_WORKSPACE, wrap(workspace_, workspaces_[a.slot].data())},
                        {DNNL_ARG_DIFF_SRC, wrap(data_, a.grad_inputs[0]->data())}});
  }

 private:
  LrnSpec spec_;
  memory::desc data_, workspace_;
  dnnl::primitive forward_, backward_;
  std::vector<Tensor> workspaces_;
};

}  // namespace

std::unique_ptr<Layer> make_batch_norm(const BatchNormSpec& spec) { return std::make_unique<BatchNorm>(spec); }
std::unique_ptr<Layer> make_lrn(const LrnSpec& spec) { return std::make_unique<Lrn>(spec); }

}  // namespace baton::layers::cpu
