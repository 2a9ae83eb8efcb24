// Implementation of the tests' backend choice.
#include "tests/support/backends.hpp"

#include <cstdlib>

#include "runtime/base/cuda_devices.hpp"
#include "runtime/base/error.hpp"

namespace baton::test {

layers::Backend mode_backend() {
  const char* name = std::getenv("BATON_TEST_BACKEND");
  const std::string chosen = name ? name : "cpu";
  for (layers::Backend b : {layers::Backend::cpu, layers::Backend::cuda, layers::Backend::reference})
    if (chosen == layers::backend_name(b)) return b;
  BATON_FAIL("BATON_TEST_BACKEND is '" << chosen << "'; set it to cpu, cuda or reference");
}

std::string unavailable(layers::Backend backend) {
  if (backend != layers::Backend::cuda) return "";
  const CudaDevices devices = cuda_devices();
  return devices.count > 0 ? "" : "no GPU to run the cuda backend on: " + devices.summary;
}

}  // namespace baton::test
