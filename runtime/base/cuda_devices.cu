// cuda_devices() on the CUDA runtime.
#include <cuda_runtime.h>

#include <sstream>

#include "runtime/base/cuda_devices.hpp"

namespace baton {

CudaDevices cuda_devices() {
  CudaDevices devices;
  cudaError_t status = cudaGetDeviceCount(&devices.count);
  if (status != cudaSuccess) {
    devices.count = 0;
    devices.summary = std::string("no usable CUDA device: ") + cudaGetErrorString(status);
    return devices;
  }
  std::ostringstream summary;
  for (int i = 0; i < devices.count; ++i) {
    cudaDeviceProp properties{};
    cudaGetDeviceProperties(&properties, i);
    summary << (i ? ", " : "") << properties.name << " (sm_" << properties.major << properties.minor << ")";
  }
  devices.summary = devices.count ? summary.str() : "no CUDA device is visible";
  return devices;
}

}  // namespace baton
