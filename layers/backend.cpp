// The factories that pick a layer's kernels, and the layout conversions between layers, by backend.
#include <algorithm>
#include <functional>

#include "baton/config.hpp"
#include "layers/layer.hpp"
#include "runtime/base/error.hpp"

namespace baton::layers {

std::unique_ptr<Layer> make_reference_layer(const LayerSpec& spec);
#if BATON_WITH_ONEDNN
std::unique_ptr<Layer> make_cpu_layer(const LayerSpec& spec);
std::unique_ptr<Conversion> make_cpu_conversion(const TensorSpec& from, const TensorSpec& to, bool accumulate);
#endif
#if BATON_WITH_CUDA
std::unique_ptr<Layer> make_cuda_layer(const LayerSpec& spec);
std::unique_ptr<Conversion> make_cuda_conversion(const TensorSpec& from, const TensorSpec& to, bool accumulate);
void sum_gradients_on_device(std::span<const float* const> terms, const float* relu_output, float* dst, int64_t count);
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
}  // namespace

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::cpu: return "cpu";
    case Backend::cuda: return "cuda";
    case Backend::reference: break;
  }
  return "reference";
}

Backend backend_named(const std::string& name) {
  for (Backend b : {Backend::cpu, Backend::cuda, Backend::reference})
    if (name == backend_name(b)) return b;
  BATON_FAIL("unknown backend '" << name << "'; choose cpu, cuda or reference");
}

std::unique_ptr<Layer> make_layer(const LayerSpec& spec, Backend backend) {
  if (backend == Backend::reference) return make_reference_layer(spec);
  if (backend == Backend::cuda) {
#if BATON_WITH_CUDA
    return make_cuda_layer(spec);
#else
    BATON_FAIL("this baton was built without CUDA (BATON_WITH_CUDA=OFF), so --backend cuda is not available");
#endif
  }
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
#if BATON_WITH_CUDA
  if (from.on_device() || to.on_device()) return make_cuda_conversion(from, to, accumulate);
#endif
  BATON_CHECK(backend == Backend::cpu, "the reference kernels only use plain layouts, not " << from.layout_name()
                                                                                           << " or " << to.layout_name());
#if BATON_WITH_ONEDNN
  return make_cpu_conversion(from, to, accumulate);
#else
  BATON_FAIL("blocked layouts need the oneDNN kernels, which this baton was built without");
#endif
}

namespace {
void sum_gradients_on_host(std::span<const float* const> terms, const float* relu_output, float* dst, int64_t n) {
  const float* a = terms[0];
  const float* b = terms.size() > 1 ? terms[1] : nullptr;
  if (terms.size() > 2) {  // rare: fold the third and later terms into dst first
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) dst[i] = a[i] + b[i];
    for (size_t t = 2; t + 1 < terms.size(); ++t) {
#pragma omp parallel for simd
      for (int64_t i = 0; i < n; ++i) dst[i] += terms[t][i];
    }
    a = dst;
    b = terms.back();
  }
  if (b && relu_output) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) dst[i] = relu_output[i] > 0.0f ? a[i] + b[i] : 0.0f;
  } else if (b) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) dst[i] = a[i] + b[i];
  } else if (relu_output) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < n; ++i) dst[i] = relu_output[i] > 0.0f ? a[i] : 0.0f;
  } else if (a != dst) {
    std::copy_n(a, n, dst);
  }
}

}  // namespace

void sum_gradients(std::span<const float* const> terms, const float* relu_output, Tensor& dst) {
  const int64_t count = int64_t(dst.storage_floats());
#if BATON_WITH_CUDA
  if (dst.spec().on_device()) return sum_gradients_on_device(terms, relu_output, dst.data(), count);
#endif
  sum_gradients_on_host(terms, relu_output, dst.data(), count);
}

}  // namespace baton::layers
