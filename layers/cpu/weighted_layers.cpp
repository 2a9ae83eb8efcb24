// conv2d and linear on oneDNN: primitives with weights and an optional bias. Weights live plain
// in the flat parameter buffer; each primitive gets them in its own layout through a per-version
// cache (linear layers use them plain), and weight gradients are accumulated into plain.
#include "layers/cpu/cpu_layers.hpp"

namespace baton::layers::cpu {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

class WeightedLayer : public Layer {
 public:
  LayerIO setup(const std::vector<TensorSpec>& inputs, int /*slots*/) override {
    input_dims_ = inputs[0].dims;
    output_dims_ = infer_output_dims(spec(), {input_dims_});
    std::vector<ParamSpec> params = param_specs(spec(), {input_dims_});
    Dims weight_dims = params[0].dims;
    weight_count_ = element_count(weight_dims);
    bias_count_ = params.size() > 1 ? element_count(params[1].dims) : 0;
    bias_ = bias_count_ ? plain_desc({bias_count_}) : memory::desc();

    const memory::desc weights = weights_request(weight_dims);
    dnnl::primitive_desc fwd = make_forward(any_desc(input_dims_), weights, bias_, any_desc(output_dims_));
    src_ = fwd.src_desc(0);
    dst_ = fwd.dst_desc(0);
    // Backward primitives choose their own layouts (a forward's plain small-channel src has no fast
    // backward); the adapters convert where they differ from the forward's.
    dnnl::primitive_desc bwd_data = make_backward_data(any_desc(input_dims_), weights, any_desc(output_dims_));
    dnnl::primitive_desc bwd_weights = make_backward_weights(any_desc(input_dims_), weights, bias_,
                                                             any_desc(output_dims_));
    const memory::desc input = input_layout(desc_of(inputs[0]), bwd_data.diff_src_desc(0), bwd_weights.src_desc(0));
    forward_input_ = LayoutAdapter(input, src_);
    data_grad_output_ = LayoutAdapter(dst_, bwd_data.diff_dst_desc(0));
    data_grad_input_ = LayoutAdapter(input, bwd_data.diff_src_desc(0));
    weights_input_ = LayoutAdapter(input, bwd_weights.src_desc(0));
    weights_grad_output_ = LayoutAdapter(dst_, bwd_weights.diff_dst_desc(0));
    diff_src_ = bwd_data.diff_src_desc(0);
    data_diff_dst_ = bwd_data.diff_dst_desc(0);
    weights_src_ = bwd_weights.src_desc(0);
    weights_diff_dst_ = bwd_weights.diff_dst_desc(0);
    forward_ = dnnl::primitive(fwd);
    backward_data_ = dnnl::primitive(bwd_data);
    backward_weights_ = dnnl::primitive(bwd_weights);

    memory::desc plain_weights = plain_desc(weight_dims);
    forward_weights_desc_ = fwd.weights_desc(0);
    backward_data_weights_desc_ = bwd_data.weights_desc(0);
    forward_weights_ = CachedParam(plain_weights, forward_weights_desc_);
    backward_data_weights_ = CachedParam(plain_weights, backward_data_weights_desc_);
    diff_weights_desc_ = bwd_weights.diff_weights_desc(0);
    diff_weights_ = Tensor(TensorSpec{{int64_t(diff_weights_desc_.get_size() / sizeof(float))}, nullptr});
    diff_bias_ = Tensor(TensorSpec{{std::max<int64_t>(bias_count_, 1)}, nullptr});
    accumulate_weights_ = Reorder(diff_weights_desc_, plain_weights, true);
    return LayerIO{{spec_of(input_dims_, input)}, spec_of(output_dims_, dst_)};
  }

  void forward(const ForwardArgs& a) override {
    const void* weights = forward_weights_.get(a.params.data, a.params.version);
    Args args{{DNNL_ARG_SRC, wrap(src_, forward_input_.in(a.inputs[0]->data()))},
              {DNNL_ARG_WEIGHTS, wrap(forward_weights_desc_, weights)},
              {DNNL_ARG_DST, wrap(dst_, a.output->data())}};
    if (bias_count_) args.emplace(DNNL_ARG_BIAS, wrap(bias_, a.params.data + weight_count_));
    execute(forward_, args);
  }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] == nullptr) return;
    // Where both passes want one layout, the forward's cache serves (no second reorder of the
    // same version: VGG-16's 3x3 convolutions); it converts again only for another version.
    CachedParam& cache = backward_data_weights_desc_ == forward_weights_desc_ ? forward_weights_ : backward_data_weights_;
    const void* weights = cache.get(a.params.data, a.params.version);
    void* grad_input = a.grad_inputs[0]->data();
    execute(backward_data_, {{DNNL_ARG_DIFF_DST, wrap(data_diff_dst_, data_grad_output_.in(a.grad_output->data()))},
                             {DNNL_ARG_WEIGHTS, wrap(backward_data_weights_desc_, weights)},
                             {DNNL_ARG_DIFF_SRC, wrap(diff_src_, data_grad_input_.out(grad_input))}});
    data_grad_input_.finish(grad_input);
  }

  void backward_weights(const BackwardArgs& a) override {
    Args args{{DNNL_ARG_SRC, wrap(weights_src_, weights_input_.in(a.inputs[0]->data()))},
              {DNNL_ARG_DIFF_DST, wrap(weights_diff_dst_, weights_grad_output_.in(a.grad_output->data()))},
              {DNNL_ARG_DIFF_WEIGHTS, wrap(diff_weights_desc_, diff_weights_.data())}};
    if (bias_count_) args.emplace(DNNL_ARG_DIFF_BIAS, wrap(bias_, diff_bias_.data()));
    execute(backward_weights_, args);
    accumulate_weights_.run(diff_weights_.data(), a.grads);
    float* bias_grads = a.grads + weight_count_;
    const float* diff_bias = diff_bias_.data();
    for (int64_t i = 0; i < bias_count_; ++i) bias_grads[i] += diff_bias[i];
  }

 protected:
  virtual const LayerSpec& spec() const = 0;
  // The weights' layout asked of the primitives: any (each primitive's choice) unless overridden.
  virtual memory::desc weights_request(const Dims& weight_dims) const { return any_desc(weight_dims); }
  // The three primitive descriptors; src and dst of the backward ones are the forward's layouts.
  virtual dnnl::primitive_desc make_forward(const memory::desc& src, const memory::desc& weights,
                                            const memory::desc& bias, const memory::desc& dst) = 0;
  virtual dnnl::primitive_desc make_backward_data(const memory::desc& diff_src, const memory::desc& weights,
                                                  const memory::desc& diff_dst) = 0;
  virtual dnnl::primitive_desc make_backward_weights(const memory::desc& src, const memory::desc& diff_weights,
                                                     const memory::desc& diff_bias, const memory::desc& diff_dst) = 0;

  Dims input_dims_, output_dims_;

 private:
  // The layout the input arrives in: the producer's, or the forward's own src when that saves
  // conversions. Taking the producer's moves the forward's conversion into the layer (the same
  // work) and saves the data gradient's round trip when the backward's layout is the producer's
  // (LeNet-5's conv2 reads 6 channels plain but returns its gradient in the pool's nChw16c).
  memory::desc input_layout(const memory::desc& produced, const memory::desc& diff_src,
                            const memory::desc& weights_src) const {
    const int keep_produced = (produced != src_) + (diff_src != produced) + (weights_src != produced);
    const int ask_src = (produced != src_) + (diff_src != src_) + (src_ != produced) + (weights_src != src_);
    return keep_produced < ask_src ? produced : src_;
  }

  int64_t weight_count_ = 0, bias_count_ = 0;
  memory::desc src_, dst_, bias_, forward_weights_desc_, backward_data_weights_desc_, diff_weights_desc_;
  memory::desc diff_src_, data_diff_dst_, weights_src_, weights_diff_dst_;  // the backward primitives' layouts
  LayoutAdapter forward_input_, data_grad_output_, data_grad_input_, weights_input_, weights_grad_output_;
  dnnl::primitive forward_, backward_data_, backward_weights_;
  CachedParam forward_weights_, backward_data_weights_;
  Tensor diff_weights_, diff_bias_;
  Reorder accumulate_weights_;
};

class Conv2d final : public WeightedLayer {
 public:
  explicit Conv2d(const Conv2dSpec& spec) : spec_(spec), conv_(spec) {}

  LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) override {
    const int64_t channels = std::min(inputs[0].dims[1], conv_.out_channels);
    data_algorithm_ = algorithm_for(channels, 32);
    weights_algorithm_ = algorithm_for(channels, 16);
    weights_in_nhwc_ = weights_algorithm_ == algorithm::convolution_direct && weight_grad_faster_in_nhwc(inputs[0].dims[1]);
    return WeightedLayer::setup(inputs, slots);
  }

 protected:
  const LayerSpec& spec() const override { return spec_; }

  dnnl::primitive_desc make_forward(const memory::desc& src, const memory::desc& weights, const memory::desc& bias,
                                    const memory::desc& dst) override {
    auto desc = conv_.bias ? dnnl::convolution_forward::desc(prop_kind::forward_training, data_algorithm_,
                                                             src, weights, bias, dst, strides(), padding(), padding())
                           : dnnl::convolution_forward::desc(prop_kind::forward_training, data_algorithm_,
                                                             src, weights, dst, strides(), padding(), padding());
    forward_ = dnnl::convolution_forward::primitive_desc(desc, engine());
    return forward_;
  }

  dnnl::primitive_desc make_backward_data(const memory::desc& diff_src, const memory::desc& weights,
                                          const memory::desc& diff_dst) override {
    dnnl::convolution_backward_data::desc desc(data_algorithm_, diff_src, weights, diff_dst, strides(),
                                               padding(), padding());
    return dnnl::convolution_backward_data::primitive_desc(desc, engine(), forward_);
  }

  dnnl::primitive_desc make_backward_weights(const memory::desc& any_src, const memory::desc& diff_weights,
                                             const memory::desc& diff_bias, const memory::desc& any_diff_dst) override {
    const memory::desc src = weights_in_nhwc_ ? nhwc(input_dims_) : any_src;
    const memory::desc diff_dst = weights_in_nhwc_ ? nhwc(output_dims_) : any_diff_dst;
    auto desc = conv_.bias ? dnnl::convolution_backward_weights::desc(weights_algorithm_, src, diff_weights,
                                                                      diff_bias, diff_dst, strides(), padding(), padding())
                           : dnnl::convolution_backward_weights::desc(weights_algorithm_, src, diff_weights,
                                                                      diff_dst, strides(), padding(), padding());
    return dnnl::convolution_backward_weights::primitive_desc(desc, engine(), forward_);
  }

 private:
  // oneDNN 2.6's weight gradient in the layouts it picks itself falls back to AVX2 kernels on
  // 8-channel blocks for 6-12 input channels; in nhwc it stays on AVX-512, 1.6-2x faster, and at 24
  // channels 1.5x (bench/kernels_bench, ConvWeightGradSmallChannels). At 1-3 channels nhwc is slower.
  static bool weight_grad_faster_in_nhwc(int64_t in_channels) { return in_channels > 4 && in_channels % 16 != 0; }
  static memory::desc nhwc(const Dims& dims) {
    return memory::desc(to_dnnl(dims), memory::data_type::f32, memory::format_tag::nhwc);
  }

  // oneDNN's Winograd F(4x4, 3x3) against its direct kernels on 3x3 stride-1 convolutions at batch
  // 128, 1 thread (bench/kernels_bench, Conv3x3): forward and data gradient 1.4-1.7x faster from 32
  // channels up but 1.5x slower at 16; the weight gradient 1.2-1.8x faster from 16 channels up.
  algorithm algorithm_for(int64_t channels, int64_t winograd_from) const {
    const bool winograd = conv_.kernel == 3 && conv_.stride == 1 && channels >= winograd_from && channels % 16 == 0 &&
                          conv_.out_channels % 16 == 0;
    return winograd ? algorithm::convolution_winograd : algorithm::convolution_direct;
  }

  memory::dims strides() const { return {conv_.stride, conv_.stride}; }
  memory::dims padding() const { return {conv_.padding, conv_.padding}; }

  LayerSpec spec_;
  Conv2dSpec conv_;
  algorithm data_algorithm_ = algorithm::convolution_direct;     // forward and data gradient
  algorithm weights_algorithm_ = algorithm::convolution_direct;  // weight gradient
  bool weights_in_nhwc_ = false;                                  // the weight gradient's src and diff_dst
  dnnl::convolution_forward::primitive_desc forward_;
};

class Linear final : public WeightedLayer {
 public:
  explicit Linear(const LinearSpec& spec) : spec_(spec), linear_(spec) {}

 protected:
  const LayerSpec& spec() const override { return spec_; }

  // Plain weights: oneDNN's GEMM kernels on them cost about what its brgemm on blocked weights does
  // (LeNet-5's 400x120 and AlexNet's 4096x4096 at batch 64: 0.18 against 0.19 ms, 73 against 68 ms
  // for the three passes) and save reordering the weights for both passes and the gradient back,
  // every update (17 ms each for a 4096x4096 layer).
  memory::desc weights_request(const Dims& weight_dims) const override { return plain_desc(weight_dims); }

  dnnl::primitive_desc make_forward(const memory::desc& src, const memory::desc& weights, const memory::desc& bias,
                                    const memory::desc& dst) override {
    auto desc = linear_.bias ? dnnl::inner_product_forward::desc(prop_kind::forward_training, src, weights, bias, dst)
                             : dnnl::inner_product_forward::desc(prop_kind::forward_training, src, weights, dst);
    forward_ = dnnl::inner_product_forward::primitive_desc(desc, engine());
    return forward_;
  }

  dnnl::primitive_desc make_backward_data(const memory::desc& diff_src, const memory::desc& weights,
                                          const memory::desc& diff_dst) override {
    dnnl::inner_product_backward_data::desc desc(diff_src, weights, diff_dst);
    return dnnl::inner_product_backward_data::primitive_desc(desc, engine(), forward_);
  }

  dnnl::primitive_desc make_backward_weights(const memory::desc& src, const memory::desc& diff_weights,
                                             const memory::desc& diff_bias, const memory::desc& diff_dst) override {
    auto desc = linear_.bias ? dnnl::inner_product_backward_weights::desc(src, diff_weights, diff_bias, diff_dst)
                             : dnnl::inner_product_backward_weights::desc(src, diff_weights, diff_dst);
    return dnnl::inner_product_backward_weights::primitive_desc(desc, engine(), forward_);
  }

 private:
  LayerSpec spec_;
  LinearSpec linear_;
  dnnl::inner_product_forward::primitive_desc forward_;
};

}  // namespace

std::unique_ptr<Layer> make_conv2d(const Conv2dSpec& spec) { return std::make_unique<Conv2d>(spec); }
std::unique_ptr<Layer> make_linear(const LinearSpec& spec) { return std::make_unique<Linear>(spec); }

}  // namespace baton::layers::cpu
