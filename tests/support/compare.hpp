// Test helpers shared by the kernel and network suites: seeded random tensors, plain copies of
// tensors in any layout, and a comparison that prints the max abs/rel difference per tensor.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "layers/layer.hpp"
#include "runtime/base/tensor.hpp"

namespace baton::test {

std::vector<float> random_values(int64_t count, uint64_t key, float scale = 1.0f);

// The tensor's elements in plain row-major order, whatever its layout (backend: who converts).
std::vector<float> to_plain(const Tensor& tensor, layers::Backend backend = layers::Backend::cpu);
// A tensor of `spec` holding the plain row-major `values`.
Tensor from_plain(const std::vector<float>& values, const TensorSpec& spec, layers::Backend backend = layers::Backend::cpu);

struct DiffStats {
  bool same_size = true;
  double max_abs = 0, max_rel = 0, rel_l2 = 0;
  double scale = 1;  // max(max|want|, 1)
};
// Prints "<name>: max abs diff A, max rel diff R, rel L2 L (n elements)".
DiffStats compare(const std::string& name, const std::vector<float>& got, const std::vector<float>& want);

// Passes when max|got - want| <= tolerance * max(max|want|, 1): the error relative to the tensor's scale.
::testing::AssertionResult close(const std::string& name, const std::vector<float>& got, const std::vector<float>& want,
                                 double tolerance);
// Passes when ||got - want||₂ <= tolerance * ||want||₂.
::testing::AssertionResult close_in_l2(const std::string& name, const std::vector<float>& got,
                                       const std::vector<float>& want, double tolerance);

}  // namespace baton::test
