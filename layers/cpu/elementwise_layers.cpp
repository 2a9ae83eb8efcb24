// Layers that move or combine elements without weights: relu and residual add on oneDNN,
// flatten as a reorder to plain NCHW, dropout and the option-A shortcut as OpenMP loops.
#include <cstring>

#include "layers/cpu/cpu_layers.hpp"
#include "runtime/base/rng.hpp"

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

// Residual add, optionally with the following ReLU applied as a post-op in forward; its backward
// is then left to the network, which folds it into the gradient sum at the fork after the ReLU.
class Add final : public Layer {
 public:
  Absorbed absorb_relu(ReluSide side) override {
    if (side != ReluSide::after) return Absorbed::no;
    relu_ = true;
    return Absorbed::forward_only;
  }

  LayerIO setup(const std::vector<TensorSpec>& inputs, int /*slots*/) override {
    data_ = desc_of(inputs[0]);
    dnnl::primitive_attr attr;
    if (relu_) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    forward_ = dnnl::binary(dnnl::binary::primitive_desc({algorithm::binary_add, data_, data_, data_}, attr, engine()));
    return LayerIO{{inputs[0], inputs[0]}, inputs[0], InputGrads::output_grad};
  }

  void forward(const ForwardArgs& a) override {
    execute(forward_, {{DNNL_ARG_SRC_0, wrap(data_, a.inputs[0]->data())},
                       {DNNL_ARG_SRC_1, wrap(data_, a.inputs[1]->data())},
                       {DNNL_ARG_DST, wrap(data_, a.output->data())}});
  }

  void backward_data(const BackwardArgs& a) override {
    for (Tensor* grad : a.grad_inputs) copy_unless_same(*a.grad_output, grad);
  }

 private:
  bool relu_ = false;
  memory::desc data_;
  dnnl::primitive forward_;
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
// Both passes are gathers that write every element once, padding included, so nothing is zeroed
// beforehand.
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

  // output(c, h, w) = input(c - pad, h*stride, w*stride), zero for the padded channels.
  void forward(const ForwardArgs& a) override {
    const int64_t pad = (out_[1] - in_[1]) / 2, stride = spec_.stride;
    gather(out_, in_, -pad, a.inputs[0]->data(), a.output->data(),
           [&](int64_t h, int64_t w) { return (h * stride * in_[3] + w * stride); });
  }

  // grad_input(c, h, w) = grad_output(c + pad, h/stride, w/stride) where h and w are multiples of
  // the stride, else zero.
  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] == nullptr) return;
    const int64_t pad = (out_[1] - in_[1]) / 2, stride = spec_.stride;
    gather(in_, out_, pad, a.grad_output->data(), a.grad_inputs[0]->data(), [&](int64_t h, int64_t w) {
      return h % stride == 0 && w % stride == 0 ? (h / stride) * out_[3] + w / stride : int64_t(-1);
    });
  }

 private:
  int64_t channel_blocks(const Dims& d) const { return (d[1] + block_ - 1) / block_; }

  // Offset of element (n, c, 0, 0) in nChw{block}c; consecutive positions are `block_` floats apart.
  int64_t channel_base(const Dims& d, int64_t n, int64_t c) const {
    return (n * channel_blocks(d) + c / block_) * d[2] * d[3] * block_ + c % block_;
  }

  // Writes every element of `to` (dims to_dims) once: to(n, c, h, w) = from(n, c + shift, p) with
  // p = position(h, w), or zero where that channel does not exist or p is -1.
  template <class Position>
  void gather(const Dims& to_dims, const Dims& from_dims, int64_t shift, const float* from, float* to,
              Position position) const {
    const int64_t blocks = channel_blocks(to_dims), plane = to_dims[2] * to_dims[3], B = block_;
#pragma omp parallel for collapse(2)
    for (int64_t n = 0; n < to_dims[0]; ++n) {
      for (int64_t cb = 0; cb < blocks; ++cb) {
        std::vector<int64_t> source(size_t(B), -1);  // per lane: offset of its (n, c + shift, 0, 0)
        for (int64_t lane = 0; lane < B; ++lane) {
          const int64_t c = cb * B + lane, c_from = c + shift;
          if (c < to_dims[1] && c_from >= 0 && c_from < from_dims[1]) source[lane] = channel_base(from_dims, n, c_from);
        }
        float* out = to + (n * blocks + cb) * plane * B;
        for (int64_t h = 0; h < to_dims[2]; ++h) {
          for (int64_t w = 0; w < to_dims[3]; ++w, out += B) {
            const int64_t p = position(h, w);
            for (int64_t lane = 0; lane < B; ++lane)
              out[lane] = p >= 0 && source[lane] >= 0 ? from[source[lane] + p * B] : 0.0f;
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
