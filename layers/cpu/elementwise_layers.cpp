// Layers that move or combine elements without weights: relu and residual add on oneDNN,
// flatten as a reorder to plain NCHW, dropout and the option-A shortcut as OpenMP loops.
#include <cstring>

#include "layers/cpu/cpu_layers.hpp"
#include "runtime/rng.hpp"

namespace baton::layers::cpu {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

void copy_unless_same(const Tensor& src, Tensor* dst) {
  if (dst != nullptr && dst->data() != src.data()) std::memcpy(dst->data(), src.data(), src.bytes());
}

class Relu final : public Layer {
 public:
  LayerIO setup(const std::vector<TensorSpec>& inputs, int /*slots*/) override {
    data_ = desc_of(inputs[0]);
    forward_ = relu_forward(data_);
    backward_ = relu_backward(data_);
    return LayerIO{{inputs[0]}, inputs[0]};
  }

  void forward(const ForwardArgs& a) override {
    execute(forward_, {{DNNL_ARG_SRC, wrap(data_, a.inputs[0]->data())}, {DNNL_ARG_DST, wrap(data_, a.output->data())}});
  }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] == nullptr) return;
    execute(backward_, {{DNNL_ARG_DST, wrap(data_, a.output->data())},
                        {DNNL_ARG_DIFF_DST, wrap(data_, a.grad_output->data())},
                        {DNNL_ARG_DIFF_SRC, wrap(data_, a.grad_inputs[0]->data())}});
  }

 private:
  memory::desc data_;
  dnnl::primitive forward_, backward_;
};

// Residual add, optionally with the following ReLU applied as a post-op (then both inputs share
// the gradient relu'(y)·dy, computed once).
class Add final : public Layer {
 public:
  bool absorb_relu(ReluSide side) override { return relu_ = side == ReluSide::after; }

  LayerIO setup(const std::vector<TensorSpec>& inputs, int /*slots*/) override {
    data_ = desc_of(inputs[0]);
    dnnl::primitive_attr attr;
    if (relu_) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
      relu_backward_ = relu_backward(data_);
    }
    forward_ = dnnl::binary(dnnl::binary::primitive_desc({algorithm::binary_add, data_, data_, data_}, attr, engine()));
    LayerIO io{{inputs[0], inputs[0]}, inputs[0]};
    io.input_grads = relu_ ? InputGrads::shared : InputGrads::output_grad;
    return io;
  }

  void forward(const ForwardArgs& a) override {
    execute(forward_, {{DNNL_ARG_SRC_0, wrap(data_, a.inputs[0]->data())},
                       {DNNL_ARG_SRC_1, wrap(data_, a.inputs[1]->data())},
                       {DNNL_ARG_DST, wrap(data_, a.output->data())}});
  }

  void backward_data(const BackwardArgs& a) override {
    const Tensor* grad = a.grad_output;
    for (Tensor* grad_input : a.grad_inputs) {
      if (grad_input == nullptr) continue;
      if (relu_ && grad == a.grad_output) {
        execute(relu_backward_, {{DNNL_ARG_DST, wrap(data_, a.output->data())},
                                 {DNNL_ARG_DIFF_DST, wrap(data_, a.grad_output->data())},
                                 {DNNL_ARG_DIFF_SRC, wrap(data_, grad_input->data())}});
        grad = grad_input;
      } else {
        copy_unless_same(*grad, grad_input);
      }
    }
  }

 private:
  bool relu_ = false;
  memory::desc data_;
  dnnl::primitive forward_, relu_backward_;
};

class Flatten final : public Layer {
 public:
  LayerIO setup(const std::vector<TensorSpec>& inputs, int /*slots*/) override {
    const Dims& in = inputs[0].dims;
    memory::desc plain = plain_desc(in);
    to_plain_ = Reorder(desc_of(inputs[0]), plain, false);
    from_plain_ = Reorder(plain, desc_of(inputs[0]), false);
    return LayerIO{{inputs[0]}, TensorSpec{infer_output_dims(FlattenSpec{}, {in}), nullptr}};
  }

  void forward(const ForwardArgs& a) override { to_plain_.run(a.inputs[0]->data(), a.output->data()); }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] != nullptr) from_plain_.run(a.grad_output->data(), a.grad_inputs[0]->data());
  }

 private:
  Reorder to_plain_, from_plain_;
};

// Reads plain inputs: the mask is a function of (key, logical index) shared with the reference.
class Dropout final : public Layer {
 public:
  explicit Dropout(const DropoutSpec& spec) : spec_(spec) {}

  LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) override {
    keys_.assign(slots, 0);
    TensorSpec plain{inputs[0].dims, nullptr};
    return LayerIO{{plain}, plain};
  }

  void forward(const ForwardArgs& a) override {
    if (a.phase == Phase::eval) {
      copy_unless_same(*a.inputs[0], a.output);
      return;
    }
    keys_[a.slot] = a.random_key;
    apply_mask(a.random_key, a.inputs[0]->data(), a.output->data(), a.output->numel());
  }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] != nullptr)
      apply_mask(keys_[a.slot], a.grad_output->data(), a.grad_inputs[0]->data(), a.grad_output->numel());
  }

 private:
  void apply_mask(uint64_t key, const float* in, float* out, int64_t count) const {
    const float p = spec_.probability, scale = p < 1 ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for
    for (int64_t i = 0; i < count; ++i) out[i] = uniform01(key, uint64_t(i)) >= p ? in[i] * scale : 0.0f;
  }

  DropoutSpec spec_;
  std::vector<uint64_t> keys_;
};

// Option-A shortcut on nchw, nChw8c or nChw16c data (other layouts are reordered to plain first).
class ShortcutPad final : public Layer {
 public:
  explicit ShortcutPad(const ShortcutPadSpec& spec) : spec_(spec) {}

  LayerIO setup(const std::vector<TensorSpec>& inputs, int /*slots*/) override {
    in_ = inputs[0].dims;
    out_ = infer_output_dims(spec_, {in_});
    block_ = std::max(channel_block(inputs[0]), 1);
    TensorSpec input = channel_blocked_spec(in_, block_);
    return LayerIO{{input}, channel_blocked_spec(out_, block_)};
  }

  void forward(const ForwardArgs& a) override {
    a.output->fill(0.0f);
    transfer(a.inputs[0]->data(), a.output->data(), true);
  }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] == nullptr) return;
    a.grad_inputs[0]->fill(0.0f);
    transfer(a.grad_output->data(), a.grad_inputs[0]->data(), false);
  }

 private:
  int64_t offset(const Dims& d, int64_t n, int64_t c, int64_t h, int64_t w) const {
    int64_t blocks = (d[1] + block_ - 1) / block_;
    return (((n * blocks + c / block_) * d[2] + h) * d[3] + w) * block_ + c % block_;
  }

  // Forward: output(c + pad, h, w) = input(c, h*stride, w*stride); backward: the transpose.
  void transfer(const float* from, float* to, bool forward) const {
    const int64_t pad = (out_[1] - in_[1]) / 2, stride = spec_.stride;
#pragma omp parallel for collapse(2)
    for (int64_t n = 0; n < in_[0]; ++n) {
      for (int64_t c = 0; c < in_[1]; ++c) {
        for (int64_t h = 0; h < out_[2]; ++h) {
          for (int64_t w = 0; w < out_[3]; ++w) {
            int64_t small = offset(in_, n, c, h * stride, w * stride), large = offset(out_, n, c + pad, h, w);
            if (forward) to[large] = from[small];
            else to[small] = from[large];
          }
        }
      }
    }
  }

  ShortcutPadSpec spec_;
  Dims in_, out_;
  int block_ = 1;
};

}  // namespace

std::unique_ptr<Layer> make_relu() { return std::make_unique<Relu>(); }
std::unique_ptr<Layer> make_add() { return std::make_unique<Add>(); }
std::unique_ptr<Layer> make_flatten() { return std::make_unique<Flatten>(); }
std::unique_ptr<Layer> make_dropout(const DropoutSpec& spec) { return std::make_unique<Dropout>(spec); }
std::unique_ptr<Layer> make_shortcut_pad(const ShortcutPadSpec& spec) { return std::make_unique<ShortcutPad>(spec); }

}  // namespace baton::layers::cpu
