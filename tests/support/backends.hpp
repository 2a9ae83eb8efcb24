// Which kernels a test runs on. The layer and network suites loop over every backend; the mode
// suites (emulation, MPI equivalence) run on BATON_TEST_BACKEND (default cpu), so the GPU check
// reruns them unchanged with BATON_TEST_BACKEND=cuda. A backend without its device is skipped.
#pragma once

#include <string>

#include "layers/layer.hpp"

namespace baton::test {

// BATON_TEST_BACKEND's backend, cpu when unset.
layers::Backend mode_backend();

// Why `backend` cannot run on this machine, or "" when it can.
std::string unavailable(layers::Backend backend);

}  // namespace baton::test

// Skips the current test, with the reason, when its backend cannot run here.
#define BATON_SKIP_UNLESS_AVAILABLE(backend)                                         \
  do {                                                                               \
    const std::string baton_why_ = ::baton::test::unavailable(backend);              \
    if (!baton_why_.empty()) GTEST_SKIP() << baton_why_;                             \
  } while (false)
