// Implementation of the CUDA layers' shared pieces.
#include "layers/cuda/cuda_common.hpp"

#include <cstdlib>
#include <cstring>

#include "layers/cuda/cuda_kernels.hpp"
#include "runtime/base/device_memory.hpp"

namespace baton::layers::cuda {

TensorSpec device_spec(const Dims& dims) { return TensorSpec{dims, std::make_shared<DeviceLayout>(dims)}; }

Tensor device_tensor(int64_t count) { return Tensor(device_spec({std::max<int64_t>(count, 1)})); }

namespace {
struct Libraries {
  Libraries() {
    auto stream = static_cast<cudaStream_t>(device::stream());
    BATON_CHECK_CUDNN(cudnnCreate(&cudnn));
    BATON_CHECK_CUDNN(cudnnSetStream(cudnn, stream));
    BATON_CHECK_CUBLAS(cublasCreate(&cublas));
    BATON_CHECK_CUBLAS(cublasSetStream(cublas, stream));
    BATON_CHECK_CUBLAS(cublasSetMathMode(cublas, tf32_allowed() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
};

Libraries& libraries() {
  static Libraries handles;  // left to the driver at exit: its teardown order is not ours to fix
  return handles;
}
}  // namespace

cudnnHandle_t cudnn() { return libraries().cudnn; }
cublasHandle_t cublas() { return libraries().cublas; }

bool tf32_allowed() {
  static const bool allowed = [] {
    const char* value = std::getenv("BATON_CUDA_TF32");
    return value && std::strcmp(value, "1") == 0;
  }();
  return allowed;
}

TensorDescriptor::TensorDescriptor(const Dims& dims) {
  BATON_CHECK(dims.size() == 2 || dims.size() == 4, "the CUDA kernels take N×F or N×C×H×W tensors, not " << to_string(dims));
  const int n = int(dims[0]), c = int(dims[1]), h = dims.size() == 4 ? int(dims[2]) : 1,
            w = dims.size() == 4 ? int(dims[3]) : 1;
  BATON_CHECK_CUDNN(cudnnCreateTensorDescriptor(&descriptor_));
  BATON_CHECK_CUDNN(cudnnSetTensor4dDescriptor(descriptor_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w));
}

TensorDescriptor::~TensorDescriptor() { cudnnDestroyTensorDescriptor(descriptor_); }

const float* DeviceParams::get(const ParamsView& view) {
  BATON_CHECK(view.data != nullptr, "a CUDA layer with parameters was given none");
  if (copy_.empty()) copy_ = device_tensor(count_);
  if (view.data != source_ || view.version != version_) {
    device::upload(view.data, copy_.data(), size_t(count_));
    source_ = view.data;
    version_ = view.version;
  }
  return copy_.data();
}

const float* DeviceParams::last() const {
  BATON_CHECK(!copy_.empty(), "a CUDA layer's parameters were asked for before any forward uploaded them");
  return copy_.data();
}

float* HostGradients::scratch() {
  if (scratch_.empty()) scratch_ = device_tensor(count_);
  return scratch_.data();
}

void HostGradients::add_to(float* host_grads) {
  BATON_CHECK(host_grads != nullptr, "a CUDA layer's backward_weights was given no gradient buffer");
  staging_.resize(size_t(count_));
  device::download(scratch(), staging_.data(), staging_.size());
  for (size_t i = 0; i < staging_.size(); ++i) host_grads[i] += staging_[i];
}

void* Workspace::reserve(size_t bytes) {
  if (bytes > bytes_) {
    buffer_ = device_tensor(int64_t((bytes + sizeof(float) - 1) / sizeof(float)));
    bytes_ = bytes;
  }
  return bytes_ ? static_cast<void*>(buffer_.data()) : nullptr;
}

}  // namespace baton::layers::cuda
