// The factories that pick a layer's kernels, and the layout conversions between layers, by backend.
#include <algorithm>
#include <functional>

#include "baton/config.hpp"
#include "layers/layer.hpp"
#include "runtime/error.hpp"

namespace baton::layers {

std::unique_ptr<Layer> make_reference_layer(const LayerSpec& spec);
#if BATON_WITH_ONEDNN
std::unique_ptr<Layer> make_cpu_layer(const LayerSpec& spec);
std::unique_ptr<Conversion> make_cpu_conversion(const TensorSpec& from, const TensorSpec& to, bool accumulate);
std::unique_ptr<Sum> make_cpu_sum(const TensorSpec& spec, int terms);
#endif

namespace {
class PlainConversion final : public Conversion {
 public:
  explicit PlainConversion(bool accumulate) : accumulate_(accumulate) {}
  void run(const Tensor& src, Tensor& dst) const override {
    const float* from = src.data();
    float* to = dst.data();
    if (accumulate_) std::transform(from, from + src.numel(), to, to, std::plus<float>());
    else std::copy_n(from, src.numel(), to);
  }

 private:
  bool accumulate_;
};

class PlainSum final : public Sum {
 public:
  void run(std::span<const Tensor* const> terms, Tensor& dst) const override {
    float* out = dst.data();
    std::copy_n(terms[0]->data(), dst.numel(), out);
    for (size_t t = 1; t < terms.size(); ++t)
      std::transform(out, out + dst.numel(), terms[t]->data(), out, std::plus<float>());
  }
};
}  // namespace

const char* backend_name(Backend backend) { return backend == Backend::cpu ? "cpu" : "reference"; }

std::unique_ptr<Layer> make_layer(const LayerSpec& spec, Backend backend) {
  if (backend == Backend::reference) return make_reference_layer(spec);
#if BATON_WITH_ONEDNN
  return make_cpu_layer(spec);
#else
  BATON_FAIL("this baton was built without oneDNN, so only --backend reference is available");
#endif
}

std::unique_ptr<Conversion> make_conversion(const TensorSpec& from, const TensorSpec& to, bool accumulate,
                                            Backend backend) {
  BATON_CHECK(from.dims == to.dims, "cannot convert a " << to_string(from.dims) << " tensor to " << to_string(to.dims));
  if (from.plain() && to.plain()) return std::make_unique<PlainConversion>(accumulate);
  BATON_CHECK(backend == Backend::cpu, "the reference kernels only use plain layouts, not " << from.layout_name()
                                                                                           << " or " << to.layout_name());
#if BATON_WITH_ONEDNN
  return make_cpu_conversion(from, to, accumulate);
#else
  BATON_FAIL("blocked layouts need the oneDNN kernels, which this baton was built without");
#endif
}

std::unique_ptr<Sum> make_sum(const TensorSpec& spec, int terms, Backend backend) {
  BATON_CHECK(terms >= 1, "a sum needs at least one term");
#if BATON_WITH_ONEDNN
  if (backend == Backend::cpu) return make_cpu_sum(spec, terms);
#endif
  BATON_CHECK(spec.plain(), "the reference kernels only sum plain tensors, not " << spec.layout_name());
  (void)backend;
  return std::make_unique<PlainSum>();
}

}  // namespace baton::layers
