// BATON_CHECK_CUDA(call): a CUDA runtime call that fails throws baton::Error naming the call and
// CUDA's reason, with rank, file and line, like every other error of baton.
#pragma once

#include <cuda_runtime.h>

#include "runtime/base/error.hpp"

#define BATON_CHECK_CUDA(call)                                                                  \
  do {                                                                                          \
    const cudaError_t baton_cuda_status_ = (call);                                              \
    BATON_CHECK(baton_cuda_status_ == cudaSuccess, #call << " failed: "                         \
                                                         << cudaGetErrorString(baton_cuda_status_)); \
  } while (false)
