// Max, average and global-average pooling on oneDNN. The input keeps its producer's layout;
// max pooling saves its argmax workspace per slot, and global pooling hands on a plain N×C output.
#include "layers/cpu/cpu_layers.hpp"

namespace baton::layers::cpu {
namespace {

using dnnl::algorithm;

struct Window {
  algorithm kind;
  int64_t kernel_h, kernel_w, stride, padding;
};

Window window_of(const LayerSpec& spec, const Dims& input) {
  if (const auto* max = std::get_if<MaxPoolSpec>(&spec))
    return {algorithm::pooling_max, max->kernel, max->kernel, max->stride, max->padding};
  if (const auto* avg = std::get_if<AvgPoolSpec>(&spec))
    return {algorithm::pooling_avg_include_padding, avg->kernel, avg->kernel, avg->stride, avg->padding};
  return {algorithm::pooling_avg_include_padding, input[2], input[3], 1, 0};  // global average
}

class Pool final : public Layer {
 public:
  explicit Pool(const LayerSpec& spec) : spec_(spec) {}

  // max(relu(x)) = relu(max(x)), gradients included: the ReLU then runs on the smaller output.
  Absorbed absorb_relu(ReluSide side) override {
    if (side != ReluSide::before || !std::holds_alternative<MaxPoolSpec>(spec_)) return Absorbed::no;
    relu_ = true;
    return Absorbed::both_passes;
  }

  LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) override {
    const Dims& in = inputs[0].dims;
    output_dims_ = infer_output_dims(spec_, {in});
    Window w = window_of(spec_, in);
    global_ = std::holds_alternative<GlobalAvgPoolSpec>(spec_);
    Dims pooled = global_ ? Dims{in[0], in[1], 1, 1} : output_dims_;
    memory::dims strides{w.stride, w.stride}, kernel{w.kernel_h, w.kernel_w}, padding{w.padding, w.padding};

    src_ = desc_of(inputs[0]);
    dnnl::pooling_forward::desc fwd(dnnl::prop_kind::forward_training, w.kind, src_, any_desc(pooled), strides, kernel,
                                    padding, padding);
    dnnl::pooling_forward::primitive_desc fwd_pd(fwd, engine());
    dst_ = fwd_pd.dst_desc();
    dnnl::pooling_backward::desc bwd(w.kind, src_, dst_, strides, kernel, padding, padding);
    dnnl::pooling_backward::primitive_desc bwd_pd(bwd, engine(), fwd_pd);
    forward_ = dnnl::pooling_forward(fwd_pd);
    backward_ = dnnl::pooling_backward(bwd_pd);

    workspace_desc_ = fwd_pd.workspace_desc();
    if (workspace_desc_.get_size() > 0) workspaces_ = slot_buffers(workspace_desc_, slots);
    if (relu_) {
      relu_forward_ = relu_forward(dst_);
      relu_backward_ = relu_backward(dst_);
      masked_grad_ = Tensor(spec_of(pooled, dst_));
    }
    if (global_) {
      pooled_ = Tensor(spec_of(pooled, dst_));
      to_plain_ = Reorder(dst_, plain_desc(pooled), false);
      from_plain_ = Reorder(plain_desc(pooled), dst_, false);
    }
    return LayerIO{{inputs[0]}, global_ ? TensorSpec{output_dims_, nullptr} : spec_of(output_dims_, dst_)};
  }

  void forward(const ForwardArgs& a) override {
    void* dst = global_ ? pooled_.data() : a.output->data();
    Args args{{DNNL_ARG_SRC, wrap(src_, a.inputs[0]->data())}, {DNNL_ARG_DST, wrap(dst_, dst)}};
    add_workspace(args, a.slot);
    execute(forward_, args);
    if (relu_) execute(relu_forward_, {{DNNL_ARG_SRC, wrap(dst_, dst)}, {DNNL_ARG_DST, wrap(dst_, dst)}});
    if (global_) to_plain_.run(pooled_.data(), a.output->data());
  }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] == nullptr) return;
    const void* diff_dst = a.grad_output->data();
    if (global_) {
      from_plain_.run(a.grad_output->data(), pooled_.data());
      diff_dst = pooled_.data();
    }
    if (relu_) {
      execute(relu_backward_, {{DNNL_ARG_DST, wrap(dst_, a.output->data())},
                               {DNNL_ARG_DIFF_DST, wrap(dst_, diff_dst)},
                               {DNNL_ARG_DIFF_SRC, wrap(dst_, masked_grad_.data())}});
      diff_dst = masked_grad_.data();
    }
    Args args{{DNNL_ARG_DIFF_DST, wrap(dst_, diff_dst)}, {DNNL_ARG_DIFF_SRC, wrap(src_, a.grad_inputs[0]->data())}};
    add_workspace(args, a.slot);
    execute(backward_, args);
  }

 private:
  void add_workspace(Args& args, int slot) {
    if (!workspaces_.empty()) args.emplace(DNNL_ARG_WORKSPACE, wrap(workspace_desc_, workspaces_[slot].data()));
  }

  LayerSpec spec_;
  Dims output_dims_;
  bool global_ = false;
  bool relu_ = false;  // the preceding ReLU, applied to the output
  dnnl::primitive relu_forward_, relu_backward_;
  Tensor masked_grad_;
  memory::desc src_, dst_, workspace_desc_;
  dnnl::primitive forward_, backward_;
  std::vector<Tensor> workspaces_;
  Tensor pooled_;  // global pooling: the N×C×1×1 result in the primitive's layout
  Reorder to_plain_, from_plain_;
};

// Max pooling: the tiled kernel where windows tile the image, oneDNN's otherwise; which one is
// known only once setup() sees the input layout.
class MaxPool final : public Layer {
 public:
  explicit MaxPool(const MaxPoolSpec& spec) : spec_(spec) {}

  Absorbed absorb_relu(ReluSide side) override {
    if (side != ReluSide::before) return Absorbed::no;
    relu_ = true;
    return Absorbed::both_passes;
  }

  LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) override {
    kernel_ = tiled_max_pool_fits(spec_, inputs[0]) ? make_tiled_max_pool(spec_) : std::make_unique<Pool>(spec_);
    if (relu_) kernel_->absorb_relu(ReluSide::before);
    return kernel_->setup(inputs, slots);
  }
  void forward(const ForwardArgs& a) override { kernel_->forward(a); }
  void backward_data(const BackwardArgs& a) override { kernel_->backward_data(a); }

 private:
  MaxPoolSpec spec_;
  bool relu_ = false;
  std::unique_ptr<Layer> kernel_;
};

}  // namespace

std::unique_ptr<Layer> make_pool(const LayerSpec& spec) {
  if (const auto* max = std::get_if<MaxPoolSpec>(&spec)) return std::make_unique<MaxPool>(*max);
  return std::make_unique<Pool>(spec);
}

}  // namespace baton::layers::cpu
