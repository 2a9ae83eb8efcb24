// The CUDA devices this process can use. With BATON_WITH_CUDA it asks the CUDA runtime (code
// compiled by nvcc); without, it says so. GPU tests skip with the reason when the count is 0.
#pragma once

#include <string>

namespace baton {

struct CudaDevices {
  int count = 0;
  std::string summary;  // "1 x NVIDIA H100 80GB HBM3 (sm_90)" or why there are none
};

CudaDevices cuda_devices();

}  // namespace baton
