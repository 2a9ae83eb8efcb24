// The CUDA backend's glue between layers: copies between plain host tensors and device tensors
// (with the accumulating variant gradients need) and the sum of gradients meeting at a fork.
#include <vector>

#include "layers/cuda/cuda_common.hpp"
#include "layers/cuda/cuda_kernels.hpp"
#include "runtime/base/device_memory.hpp"

namespace baton::layers {
namespace {

// dst = src or dst += src, where either side may be in device memory (both plain row-major).
class DeviceConversion final : public Conversion {
 public:
  DeviceConversion(bool from_device, bool to_device, bool accumulate)
      : from_device_(from_device), to_device_(to_device), accumulate_(accumulate) {}

  void run(const Tensor& src, Tensor& dst) const override {
    const size_t count = size_t(src.numel());
    if (!accumulate_) {
      copy(src.data(), dst.data(), count);
    } else if (to_device_) {
      const float* from = src.data();
      if (!from_device_) {
        if (device_staging_.numel() < int64_t(count)) device_staging_ = cuda::device_tensor(int64_t(count));
        device::upload(from, device_staging_.data(), count);
        from = device_staging_.data();
      }
      cuda::accumulate(from, dst.data(), int64_t(count));
    } else {
      host_staging_.resize(count);
      device::download(src.data(), host_staging_.data(), count);
      for (size_t i = 0; i < count; ++i) dst.data()[i] += host_staging_[i];
    }
  }

 private:
  void copy(const float* from, float* to, size_t count) const {
    if (from_device_ && to_device_) device::copy(from, to, count);
    else if (to_device_) device::upload(from, to, count);
    else device::download(from, to, count);
  }

  bool from_device_, to_device_, accumulate_;
  mutable Tensor device_staging_;
  mutable std::vector<float> host_staging_;
};

}  // namespace

std::unique_ptr<Conversion> make_cuda_conversion(const TensorSpec& from, const TensorSpec& to, bool accumulate) {
  BATON_CHECK((from.plain() || from.on_device()) && (to.plain() || to.on_device()),
              "a tensor crosses between host and GPU only in plain NCHW, not from " << from.layout_name() << " to "
                                                                                    << to.layout_name());
  return std::make_unique<DeviceConversion>(from.on_device(), to.on_device(), accumulate);
}

// The host rule of sum_gradients, on the device: the third and later terms are folded into dst first.
void sum_gradients_on_device(std::span<const float* const> terms, const float* relu_output, float* dst, int64_t count) {
  const float* a = terms[0];
  const float* b = terms.size() > 1 ? terms[1] : nullptr;
  if (terms.size() > 2) {
    cuda::sum_masked(a, b, nullptr, dst, count);
    for (size_t t = 2; t + 1 < terms.size(); ++t) cuda::accumulate(terms[t], dst, count);
    a = dst;
    b = terms.back();
  }
  if (b || relu_output) cuda::sum_masked(a, b, relu_output, dst, count);
  else if (a != dst) device::copy(a, dst, size_t(count));
}

}  // namespace baton::layers
