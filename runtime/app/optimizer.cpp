// Implementation of the SGD update and the learning-rate schedules.
#include "runtime/app/optimizer.hpp"

#include <algorithm>
#include <cmath>

#include "runtime/base/error.hpp"

namespace baton {

namespace {

struct SgdElement {
  float weight, velocity;
};

// The update of one element, shared by step() and preview() so both round alike.
inline SgdElement sgd_element(float w, float v, float g, float lr, const SgdOptions& o) {
  const float d = g + o.weight_decay * w;
  const float next_v = o.momentum * v + d;
  return {w - lr * (o.nesterov ? d + o.momentum * next_v : next_v), next_v};
}

}  // namespace

Sgd::Sgd(size_t count, SgdOptions options) : options_(options), velocity_(count, 0.0f) {}

void Sgd::step(std::span<float> weights, std::span<const float> grads, float lr) {
  step(weights, grads, lr, 0, weights.size());
}

void Sgd::check_range(size_t weights, size_t grads, size_t begin, size_t end) const {
  BATON_CHECK(weights == velocity_.size() && grads == velocity_.size() && begin <= end && end <= velocity_.size(),
              "optimizer set up for " << velocity_.size() << " parameters was handed " << weights);
}

template <class Gradient>
void Sgd::update(std::span<float> weights, size_t grads_size, float lr, size_t begin, size_t end, Gradient gradient) {
  check_range(weights.size(), grads_size, begin, end);
  const SgdOptions o = options_;
  float* w = weights.data();
  float* v = velocity_.data();
  const int64_t first = int64_t(begin), last = int64_t(end);
#pragma omp parallel for simd
  for (int64_t i = first; i < last; ++i) {
    const SgdElement next = sgd_element(w[i], v[i], gradient(i), lr, o);
    w[i] = next.weight;
    v[i] = next.velocity;
  }
}

void Sgd::preview(std::span<const float> weights, std::span<const float> grads, float lr, std::span<float> out,
                  size_t begin, size_t end) const {
  check_range(weights.size(), grads.size() == out.size() ? grads.size() : 0, begin, end);
  const SgdOptions o = options_;
  const float* w = weights.data();
  const float* v = velocity_.data();
  const float* g = grads.data();
  float* result = out.data();
  const int64_t first = int64_t(begin), last = int64_t(end);
#pragma omp parallel for simd
  for (int64_t i = first; i < last; ++i) result[i] = sgd_element(w[i], v[i], g[i], lr, o).weight;
}

void Sgd::step(std::span<float> weights, std::span<const float> grads, float lr, size_t begin, size_t end) {
  const float* g = grads.data();
  update(weights, grads.size(), lr, begin, end, [g](int64_t i) { return g[i]; });
}

void Sgd::step_and_clear(std::span<float> weights, std::span<float> grads, float lr, size_t begin, size_t end,
                         float divisor) {
  float* g = grads.data();
  update(weights, grads.size(), lr, begin, end, [g, divisor](int64_t i) {
    const float mean = g[i] / divisor;
    g[i] = 0.0f;
    return mean;
  });
}

LrShape parse_lr_shape(const std::string& name) {
  if (name == "constant") return LrShape::constant;
  if (name == "step") return LrShape::step;
  if (name == "cosine") return LrShape::cosine;
  BATON_FAIL("unknown learning-rate schedule '" << name << "'; choose constant, step or cosine");
}

float learning_rate(const LrSchedule& s, int64_t step) {
  if (step < s.warmup_steps) return s.base * float(step + 1) / float(s.warmup_steps);
  switch (s.shape) {
    case LrShape::constant:
      return s.base;
    case LrShape::step: {
      auto passed = std::count_if(s.milestones.begin(), s.milestones.end(), [&](int64_t m) { return step >= m; });
      return s.base * std::pow(s.gamma, float(passed));
    }
    case LrShape::cosine: {
      const double span = double(std::max<int64_t>(s.total_steps - s.warmup_steps, 1));
      const double progress = std::min(1.0, double(step - s.warmup_steps) / span);
      return float(0.5 * s.base * (1.0 + std::cos(3.141592653589793 * progress)));
    }
  }
  return s.base;
}

}  // namespace baton
