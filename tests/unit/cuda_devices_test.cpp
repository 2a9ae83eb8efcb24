// The CUDA runtime is reachable from the build: with no device, the GPU tests skip and say why.
#include <gtest/gtest.h>

#include "baton/config.hpp"
#include "runtime/base/cuda_devices.hpp"

namespace baton {
namespace {

TEST(CudaDevices, ReportsDevicesOrWhyThereAreNone) {
  CudaDevices devices = cuda_devices();
  EXPECT_GE(devices.count, 0);
  EXPECT_FALSE(devices.summary.empty());
  if (devices.count == 0) GTEST_SKIP() << devices.summary;
  EXPECT_TRUE(BATON_WITH_CUDA) << "devices found by a build without CUDA";
  std::printf("  CUDA devices: %s\n", devices.summary.c_str());
}

}  // namespace
}  // namespace baton
