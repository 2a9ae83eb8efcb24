// Implementation of the shared test helpers.
#include "tests/support/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "runtime/base/rng.hpp"

namespace baton::test {

std::vector<float> random_values(int64_t count, uint64_t key, float scale) {
  std::vector<float> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[size_t(i)] = scale * float(normal01(key, uint64_t(i)));
  return values;
}

std::vector<float> to_plain(const Tensor& tensor, layers::Backend backend) {
  TensorSpec plain{tensor.dims(), nullptr};
  Tensor copy(plain);
  layers::make_conversion(tensor.spec(), plain, false, backend)->run(tensor, copy);
  return std::vector<float>(copy.data(), copy.data() + copy.numel());
}

Tensor from_plain(const std::vector<float>& values, const TensorSpec& spec, layers::Backend backend) {
  TensorSpec plain{spec.dims, nullptr};
  Tensor source(plain);
  std::copy(values.begin(), values.end(), source.data());
  Tensor result(spec);
  layers::make_conversion(plain, spec, false, backend)->run(source, result);
  return result;
}

DiffStats compare(const std::string& name, const std::vector<float>& got, const std::vector<float>& want) {
  DiffStats s;
  s.same_size = got.size() == want.size();
  double diff_squares = 0, want_squares = 0;
  for (size_t i = 0; s.same_size && i < got.size(); ++i) {
    double diff = std::abs(double(got[i]) - double(want[i]));
    if (std::isnan(got[i]) != std::isnan(want[i])) diff = INFINITY;
    s.max_abs = std::max(s.max_abs, diff);
    s.max_rel = std::max(s.max_rel, diff / std::max(std::abs(double(want[i])), 1e-3));
    s.scale = std::max(s.scale, std::abs(double(want[i])));
    diff_squares += diff * diff;
    want_squares += double(want[i]) * double(want[i]);
  }
  s.rel_l2 = std::sqrt(diff_squares / std::max(want_squares, 1e-300));
  std::printf("  %-40s max abs diff %.3g, max rel diff %.3g, rel L2 %.3g (%zu elements)\n", name.c_str(), s.max_abs,
              s.max_rel, s.rel_l2, got.size());
  return s;
}

::testing::AssertionResult close(const std::string& name, const std::vector<float>& got, const std::vector<float>& want,
                                 double tolerance) {
  DiffStats s = compare(name, got, want);
  if (!s.same_size) return ::testing::AssertionFailure() << name << ": " << got.size() << " elements, expected " << want.size();
  if (s.max_abs <= tolerance * s.scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": max abs diff " << s.max_abs << " exceeds " << tolerance * s.scale;
}

::testing::AssertionResult close_in_l2(const std::string& name, const std::vector<float>& got,
                                       const std::vector<float>& want, double tolerance) {
  DiffStats s = compare(name, got, want);
  if (!s.same_size) return ::testing::AssertionFailure() << name << ": " << got.size() << " elements, expected " << want.size();
  if (s.rel_l2 <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": relative L2 difference " << s.rel_l2 << " exceeds " << tolerance;
}

}  // namespace baton::test
