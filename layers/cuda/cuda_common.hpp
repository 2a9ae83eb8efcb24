// What the CUDA layers share: the device layout (plain NCHW in GPU memory), cuDNN and cuBLAS
// handles bound to the process's stream, descriptor owners, a device copy of a layer's parameters
// per version, and the hand-back of weight gradients into the host's flat gradient buffer.
#pragma once

#include <cublas_v2.h>
#include <cudnn.h>

#include <string>
#include <vector>

#include "layers/layer.hpp"
#include "runtime/base/error.hpp"

#define BATON_CHECK_CUDNN(call)                                                                          \
  do {                                                                                                   \
    const cudnnStatus_t baton_cudnn_status_ = (call);                                                    \
    BATON_CHECK(baton_cudnn_status_ == CUDNN_STATUS_SUCCESS,                                             \
                #call << " failed: " << cudnnGetErrorString(baton_cudnn_status_));                       \
  } while (false)

#define BATON_CHECK_CUBLAS(call)                                                                         \
  do {                                                                                                   \
    const cublasStatus_t baton_cublas_status_ = (call);                                                  \
    BATON_CHECK(baton_cublas_status_ == CUBLAS_STATUS_SUCCESS,                                           \
                #call << " failed: " << cublasGetStatusString(baton_cublas_status_));                    \
  } while (false)

namespace baton::layers::cuda {

// Row-major (NCHW, N×F) floats in device memory.
class DeviceLayout final : public Layout {
 public:
  explicit DeviceLayout(const Dims& dims) : bytes_(size_t(element_count(dims)) * sizeof(float)) {}
  std::string name() const override { return "cuda"; }
  size_t bytes() const override { return bytes_; }
  bool same_as(const Layout& other) const override { return dynamic_cast<const DeviceLayout*>(&other) != nullptr; }
  bool on_device() const override { return true; }

 private:
  size_t bytes_;
};

TensorSpec device_spec(const Dims& dims);
Tensor device_tensor(int64_t count);  // a flat {count} device buffer

cudnnHandle_t cudnn();
cublasHandle_t cublas();
// TF32 tensor cores for fp32 convolutions and matrix products: off unless BATON_CUDA_TF32=1.
bool tf32_allowed();

// A cudnnTensorDescriptor_t of NCHW floats; an N×F tensor is described as N×F×1×1.
class TensorDescriptor {
 public:
  explicit TensorDescriptor(const Dims& dims);
  ~TensorDescriptor();
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  cudnnTensorDescriptor_t get() const { return descriptor_; }

 private:
  cudnnTensorDescriptor_t descriptor_ = nullptr;
};

// The device copy of one version of a layer's parameters, uploaded when the version (or the
// buffer it comes from: a stash, a prediction) changes.
class DeviceParams {
 public:
  explicit DeviceParams(int64_t count) : count_(count) {}
  const float* get(const ParamsView& view);
  // The version last uploaded (for passes whose result does not depend on it, such as batch
  // norm's parameter gradients, which cuDNN computes in the call that needs the scale).
  const float* last() const;

 private:
  int64_t count_;
  Tensor copy_;
  const float* source_ = nullptr;
  uint64_t version_ = 0;
};

// Weight gradients computed on the device into scratch(), then added into the host's flat
// gradient buffer (which accumulates over microbatches, like every backend's).
class HostGradients {
 public:
  explicit HostGradients(int64_t count) : count_(count) {}
  float* scratch();
  void add_to(float* host_grads);

 private:
  int64_t count_;
  Tensor scratch_;
  std::vector<float> staging_;
};

// Device memory of at least `bytes`, kept between calls (cuDNN workspaces).
class Workspace {
 public:
  void* reserve(size_t bytes);
  size_t bytes() const { return bytes_; }

 private:
  Tensor buffer_;
  size_t bytes_ = 0;
};

}  // namespace baton::layers::cuda
