// The reference backend: a Layer for every kind, in float, built on the plain loops of
// reference_ops.hpp. Reads and writes plain row-major tensors only and keeps each slot's saved
// state (batch statistics, max-pool positions, dropout keys) apart. Slow on purpose.
#include <functional>
#include <utility>

#include "layers/checked_layer.hpp"
#include "layers/reference/reference_ops.hpp"
#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"

namespace baton::layers {
namespace {

namespace ref = reference;

// The reference family: plain row-major tensors in host memory, and checked parameter buffers.
class ReferenceLayer : public CheckedLayer {
 public:
  using CheckedLayer::CheckedLayer;

 protected:
  const char* family() const override { return "reference"; }
  TensorSpec spec_for(const Dims& dims) const override { return TensorSpec{dims, nullptr}; }
  bool keeps(const TensorSpec& tensor) const override { return tensor.plain(); }
  void check_given(const TensorSpec& input) const override {
    BATON_CHECK(input.plain(), "the reference " << kind_name(spec_) << " layer reads plain row-major inputs only, not "
                                                << input.layout_name());
  }

  const float* params(const ParamsView& view) const {
    BATON_CHECK(view.data != nullptr, kind_name(spec_) << " was given no parameters");
    return view.data;
  }
  float* grads(const BackwardArgs& args) const {
    BATON_CHECK(args.grads != nullptr, kind_name(spec_) << " backward_weights was given no gradient buffer");
    return args.grads;
  }
};

// Convolution, and linear as the 1×1 convolution of an {N, F, 1, 1} image (see reference_ops.hpp).
class WeightedLayer final : public ReferenceLayer {
 public:
  WeightedLayer(LayerSpec spec, Conv2dSpec conv) : ReferenceLayer(std::move(spec)), conv_(conv) {}

  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    const float* weight = params(args.params);
    ref::conv2d_forward(conv_, image_dims(), input(args, 0), weight, bias_of(weight), output(args));
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dx = grad_input(args, 0))
      ref::conv2d_backward_data(conv_, image_dims(), params(args.params), grad_output(args), dx);
  }
  void backward_weights(const BackwardArgs& args) override {
    checked_slot(args.slot);
    float* dweight = grads(args);
    ref::conv2d_backward_weights(conv_, image_dims(), input(args, 0), grad_output(args), dweight, bias_of(dweight));
  }

 private:
  Dims image_dims() const { return in_dims().size() == 2 ? ref::linear_as_image(in_dims()) : in_dims(); }
  template <class P>
  P* bias_of(P* weight) const {
    return conv_.bias ? weight + conv_.out_channels * image_dims()[1] * conv_.kernel * conv_.kernel : nullptr;
  }

  Conv2dSpec conv_;
};

// One input, no saved state: y = f(x); dx = g(x, y, dy).
class StatelessLayer final : public ReferenceLayer {
 public:
  using Forward = std::function<void(const Dims& x_dims, const float* x, float* y)>;
  using Backward = std::function<void(const Dims& x_dims, const float* x, const float* y, const float* dy, float* dx)>;

  StatelessLayer(LayerSpec spec, Forward forward, Backward backward)
      : ReferenceLayer(std::move(spec)), forward_(std::move(forward)), backward_(std::move(backward)) {}

  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    forward_(in_dims(), input(args, 0), output(args));
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dx = grad_input(args, 0)) backward_(in_dims(), input(args, 0), output(args), grad_output(args), dx);
  }

 private:
  Forward forward_;
  Backward backward_;
};

class MaxPoolLayer final : public ReferenceLayer {
 public:
  explicit MaxPoolLayer(const MaxPoolSpec& spec) : ReferenceLayer(spec), pool_(spec) {}

  void forward(const ForwardArgs& args) override {
    ref::maxpool_forward(pool_, in_dims(), input(args, 0), output(args), argmax_[checked_slot(args.slot)].data());
  }
  void backward_data(const BackwardArgs& args) override {
    const std::vector<int64_t>& argmax = argmax_[checked_slot(args.slot)];
    if (float* dx = grad_input(args, 0)) ref::maxpool_backward_data(pool_, in_dims(), argmax.data(), grad_output(args), dx);
  }

 private:
  void prepare() override { argmax_.assign(size_t(slots()), std::vector<int64_t>(out_count(), -1)); }

  MaxPoolSpec pool_;
  std::vector<std::vector<int64_t>> argmax_;  // per slot: the input index each output came from
};

class BatchNormLayer final : public ReferenceLayer {
 public:
  explicit BatchNormLayer(const BatchNormSpec& spec) : ReferenceLayer(spec), norm_(spec) {}

  void forward(const ForwardArgs& args) override {
    Saved& saved = saved_[checked_slot(args.slot)];
    saved.phase = args.phase;
    if (args.phase == Phase::eval) {
      BATON_CHECK(args.state != nullptr, "batch norm in eval phase needs its running statistics");
      ref::batchnorm_forward_eval(norm_, in_dims(), input(args, 0), params(args.params), args.state, output(args));
      return;
    }
    ref::batchnorm_forward_train(norm_, in_dims(), input(args, 0), params(args.params), args.state, output(args),
                                 saved.mean.data(), saved.invstd.data());
  }
  void backward_data(const BackwardArgs& args) override {
    const Saved& saved = trained_slot(args.slot);
    if (float* dx = grad_input(args, 0))
      ref::batchnorm_backward_data(in_dims(), input(args, 0), params(args.params), saved.mean.data(),
                                   saved.invstd.data(), grad_output(args), dx);
  }
  void backward_weights(const BackwardArgs& args) override {
    const Saved& saved = trained_slot(args.slot);
    ref::batchnorm_backward_weights(in_dims(), input(args, 0), saved.mean.data(), saved.invstd.data(),
                                    grad_output(args), grads(args));
  }

 private:
  struct Saved {
    Phase phase = Phase::eval;
    std::vector<float> mean, invstd;  // per channel, from the training forward of this slot
  };

  void prepare() override {
    const size_t channels = static_cast<size_t>(in_dims()[1]);
    saved_.assign(size_t(slots()), Saved{Phase::eval, std::vector<float>(channels), std::vector<float>(channels)});
  }
  const Saved& trained_slot(int slot) const {
    const Saved& saved = saved_[checked_slot(slot)];
    BATON_CHECK(saved.phase == Phase::train,
                "the reference batch norm supports backward only after a training-phase forward of the same slot");
    return saved;
  }

  BatchNormSpec norm_;
  std::vector<Saved> saved_;
};

class DropoutLayer final : public ReferenceLayer {
 public:
  explicit DropoutLayer(const DropoutSpec& spec) : ReferenceLayer(spec), dropout_(spec) {}

  void forward(const ForwardArgs& args) override {
    Saved& saved = saved_[checked_slot(args.slot)];
    saved = Saved{args.phase, args.random_key};
    apply(saved, input(args, 0), output(args));
  }
  void backward_data(const BackwardArgs& args) override {
    const Saved& saved = saved_[checked_slot(args.slot)];
    if (float* dx = grad_input(args, 0)) apply(saved, grad_output(args), dx);
  }

 private:
  struct Saved {
    Phase phase = Phase::eval;
    uint64_t random_key = 0;  // the mask is a pure function of it
  };

  void prepare() override { saved_.assign(size_t(slots()), Saved{}); }
  // Training: the slot's mask and scale; eval: identity.
  void apply(const Saved& saved, const float* in, float* out) const {
    if (saved.phase == Phase::eval) {
      ref::copy(in_count(), in, out);
    } else {
      ref::dropout_apply(dropout_, in_count(), saved.random_key, in, out);
    }
  }

  DropoutSpec dropout_;
  std::vector<Saved> saved_;
};

class AddLayer final : public ReferenceLayer {
 public:
  AddLayer() : ReferenceLayer(AddSpec{}) {}

  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    ref::add_forward(in_count(), input(args, 0), input(args, 1), output(args));
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    ref::add_backward_data(in_count(), grad_output(args), grad_input(args, 0), grad_input(args, 1));
  }
};

// Ignores the output gradient: the loss is the end of the graph, scaled by args.loss_scale.
class SoftmaxXentLayer final : public ReferenceLayer {
 public:
  SoftmaxXentLayer() : ReferenceLayer(SoftmaxCrossEntropySpec{}) {}

  void forward(const ForwardArgs& args) override {
    checked_slot(args.slot);
    ref::softmax_xent_forward(in_dims(), input(args, 0), labels(args.labels), output(args));
  }
  void backward_data(const BackwardArgs& args) override {
    checked_slot(args.slot);
    if (float* dlogits = grad_input(args, 0))
      ref::softmax_xent_backward_data(in_dims(), input(args, 0), labels(args.labels), args.loss_scale, dlogits);
  }

 private:
  static const int32_t* labels(const int32_t* labels) {
    BATON_CHECK(labels != nullptr, "softmax cross-entropy was given no labels");
    return labels;
  }
};

std::unique_ptr<Layer> stateless(const LayerSpec& spec, StatelessLayer::Forward forward,
                                 StatelessLayer::Backward backward) {
  return std::make_unique<StatelessLayer>(spec, std::move(forward), std::move(backward));
}

}  // namespace

std::unique_ptr<Layer> make_reference_layer(const LayerSpec& spec) {
  using D = const Dims&;
  using X = const float*;
  return std::visit(
      Overloaded{
          [&](const Conv2dSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<WeightedLayer>(spec, s); },
          [&](const LinearSpec& s) -> std::unique_ptr<Layer> {
            return std::make_unique<WeightedLayer>(spec, ref::linear_as_conv(s));
          },
          [&](const ReluSpec&) {
            return stateless(
                spec, [](D d, X x, float* y) { ref::relu_forward(element_count(d), x, y); },
                [](D d, X, X y, X dy, float* dx) { ref::relu_backward_data(element_count(d), y, dy, dx); });
          },
          [&](const MaxPoolSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<MaxPoolLayer>(s); },
          [&](const AvgPoolSpec& s) {
            return stateless(
                spec, [s](D d, X x, float* y) { ref::avgpool_forward(s, d, x, y); },
                [s](D d, X, X, X dy, float* dx) { ref::avgpool_backward_data(s, d, dy, dx); });
          },
          [&](const GlobalAvgPoolSpec&) {
            return stateless(
                spec, [](D d, X x, float* y) { ref::global_avgpool_forward(d, x, y); },
                [](D d, X, X, X dy, float* dx) { ref::global_avgpool_backward_data(d, dy, dx); });
          },
          [&](const BatchNormSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<BatchNormLayer>(s); },
          [&](const DropoutSpec& s) -> std::unique_ptr<Layer> { return std::make_unique<DropoutLayer>(s); },
          [&](const FlattenSpec&) {
            return stateless(
                spec, [](D d, X x, float* y) { ref::flatten_forward(d, x, y); },
                [](D d, X, X, X dy, float* dx) { ref::flatten_backward_data(d, dy, dx); });
          },
          [&](const AddSpec&) -> std::unique_ptr<Layer> { return std::make_unique<AddLayer>(); },
          [&](const ShortcutPadSpec& s) {
            return stateless(
                spec, [s](D d, X x, float* y) { ref::shortcut_pad_forward(s, d, x, y); },
                [s](D d, X, X, X dy, float* dx) { ref::shortcut_pad_backward_data(s, d, dy, dx); });
          },
          [&](const LrnSpec& s) {
            return stateless(
                spec, [s](D d, X x, float* y) { ref::lrn_forward(s, d, x, y); },
                [s](D d, X x, X, X dy, float* dx) { ref::lrn_backward_data(s, d, x, dy, dx); });
          },
          [&](const SoftmaxCrossEntropySpec&) -> std::unique_ptr<Layer> {
            return std::make_unique<SoftmaxXentLayer>();
          },
      },
      spec);
}

}  // namespace baton::layers
