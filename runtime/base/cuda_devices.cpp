// cuda_devices() for builds without CUDA.
#include "runtime/base/cuda_devices.hpp"

#include "baton/config.hpp"

#if !BATON_WITH_CUDA
namespace baton {
CudaDevices cuda_devices() { return {0, "this baton was built without CUDA (BATON_WITH_CUDA=OFF)"}; }
}  // namespace baton
#endif
