// Implementation of the tests' backend choice.
#include "tests/support/backends.hpp"

#include <cstdlib>

#include "runtime/base/cuda_devices.hpp"

namespace baton::test {

layers::Backend mode_backend() {
  const char* name = std::getenv("BATON_TEST_BACKEND");
  return layers::backend_named(name ? name : "cpu");
}

std::string unavailable(layers::Backend backend) {
  if (backend != layers::Backend::cuda) return "";
  const CudaDevices devices = cuda_devices();
  return devices.count > 0 ? "" : "no GPU to run the cuda backend on: " + devices.summary;
}

}  // namespace baton::test
