// make_cpu_layer(): the oneDNN implementation of each layer kind.
#include "layers/cpu/cpu_layers.hpp"

#include "runtime/base/overloaded.hpp"

namespace baton::layers {

std::unique_ptr<Layer> make_cpu_layer(const LayerSpec& spec) {
  using namespace cpu;
  return std::visit(Overloaded{
                        [](const Conv2dSpec& s) { return make_conv2d(s); },
                        [](const LinearSpec& s) { return make_linear(s); },
                        [](const ReluSpec&) { return make_relu(); },
                        [&](const MaxPoolSpec&) { return make_pool(spec); },
                        [&](const AvgPoolSpec&) { return make_pool(spec); },
                        [&](const GlobalAvgPoolSpec&) { return make_pool(spec); },
                        [](const BatchNormSpec& s) { return make_batch_norm(s); },
                        [](const DropoutSpec& s) { return make_dropout(s); },
                        [](const FlattenSpec&) { return make_flatten(); },
                        [](const AddSpec&) { return make_add(); },
                        [](const ShortcutPadSpec& s) { return make_shortcut_pad(s); },
                        [](const LrnSpec& s) { return make_lrn(s); },
                        [](const SoftmaxCrossEntropySpec&) { return make_softmax_cross_entropy(); },
                    },
                    spec);
}

}  // namespace baton::layers

namespace baton::layers {
namespace {
class CpuConversion final : public Conversion {
 public:
  CpuConversion(const TensorSpec& from, const TensorSpec& to, bool accumulate)
      : reorder_(cpu::desc_of(from), cpu::desc_of(to), accumulate) {}
  void run(const Tensor& src, Tensor& dst) const override { reorder_.run(src.data(), dst.data()); }

 private:
  cpu::Reorder reorder_;
};
}  // namespace

std::unique_ptr<Conversion> make_cpu_conversion(const TensorSpec& from, const TensorSpec& to, bool accumulate) {
  return std::make_unique<CpuConversion>(from, to, accumulate);
}

}  // namespace baton::layers
