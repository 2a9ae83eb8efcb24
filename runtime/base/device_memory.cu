// device:: on the CUDA runtime: one stream per process on the chosen device, cudaMalloc'd
// storage, and copies that wait for the stream only where the host reads or reuses its side.
#include <mutex>

#include "runtime/base/cuda_check.hpp"
#include "runtime/base/cuda_devices.hpp"
#include "runtime/base/device_memory.hpp"

namespace baton::device {
namespace {

struct Current {
  std::once_flag chosen;
  int device = -1;
  cudaStream_t stream = nullptr;
};

Current& current() {
  static Current state;
  return state;
}

void choose(int index) {
  const CudaDevices devices = cuda_devices();
  BATON_CHECK(devices.count > 0, "the cuda backend needs a CUDA device, but "
                                     << devices.summary << "; use --backend cpu (and cpu in --stage-backends) here");
  BATON_CHECK(index >= 0 && index < devices.count, "CUDA device " << index << " does not exist: this machine has "
                                                                  << devices.count << " (" << devices.summary
                                                                  << "); pass --device 0 to " << devices.count - 1);
  BATON_CHECK_CUDA(cudaSetDevice(index));
  BATON_CHECK_CUDA(cudaStreamCreateWithFlags(&current().stream, cudaStreamNonBlocking));
  current().device = index;
}

__global__ void fill_kernel(float* data, size_t count, float value) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x)
    data[i] = value;
}

}  // namespace

void use_device(int index) {
  bool ran = false;
  std::call_once(current().chosen, [&] {
    ran = true;
    choose(index);
  });
  BATON_CHECK(ran || current().device == index, "this process already computes on CUDA device "
                                                    << current().device << " and cannot move to device " << index);
}

void* stream() {
  if (current().device < 0) use_device(default_device(cuda_devices().count));
  return current().stream;
}

namespace {
cudaStream_t the_stream() { return static_cast<cudaStream_t>(stream()); }
}  // namespace

std::shared_ptr<float> allocate_floats(size_t count) {
  cudaStream_t s = the_stream();
  void* memory = nullptr;
  const size_t bytes = std::max<size_t>(count, 1) * sizeof(float);
  BATON_CHECK(cudaMalloc(&memory, bytes) == cudaSuccess,
              "out of GPU memory allocating " << bytes << " bytes on device " << current().device);
  BATON_CHECK_CUDA(cudaMemsetAsync(memory, 0, bytes, s));
  return std::shared_ptr<float>(static_cast<float*>(memory), [](float* p) { cudaFree(p); });
}

void upload_bytes(const void* host, void* device, size_t bytes) {
  if (bytes == 0) return;
  BATON_CHECK_CUDA(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, the_stream()));
  BATON_CHECK_CUDA(cudaStreamSynchronize(the_stream()));
}

void upload(const float* host, float* device, size_t count) { upload_bytes(host, device, count * sizeof(float)); }

void download(const float* device, float* host, size_t count) {
  if (count == 0) return;
  BATON_CHECK_CUDA(cudaMemcpyAsync(host, device, count * sizeof(float), cudaMemcpyDeviceToHost, the_stream()));
  BATON_CHECK_CUDA(cudaStreamSynchronize(the_stream()));
}

void copy(const float* from, float* to, size_t count) {
  if (count == 0 || from == to) return;
  BATON_CHECK_CUDA(cudaMemcpyAsync(to, from, count * sizeof(float), cudaMemcpyDeviceToDevice, the_stream()));
}

void fill(float* data, size_t count, float value) {
  if (count == 0) return;
  const unsigned blocks = unsigned(std::min<size_t>((count + 255) / 256, 4096));
  fill_kernel<<<blocks, 256, 0, the_stream()>>>(data, count, value);
  BATON_CHECK_CUDA(cudaGetLastError());
}

void synchronize() {
  if (current().device >= 0) BATON_CHECK_CUDA(cudaStreamSynchronize(current().stream));
}

}  // namespace baton::device
