// SGD with momentum, Nesterov and weight decay on flat parameter buffers (PyTorch's update rule),
// and the learning-rate schedules: constant, step, cosine, each with an optional linear warm-up.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace baton {

struct SgdOptions {
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

class Sgd {
 public:
  Sgd(size_t count, SgdOptions options);
  // d = g + wd·w;  v = μ·v + d;  w -= lr · (nesterov ? d + μ·v : v)
  void step(std::span<float> weights, std::span<const float> grads, float lr);
  // The same update on elements [begin, end) only (one gradient bucket, or a shard of it).
  void step(std::span<float> weights, std::span<const float> grads, float lr, size_t begin, size_t end);
  // The same with g = grads / divisor (a sum over replicas read as their mean), zeroing grads[begin, end)
  // in the same pass, so the buffer is ready to accumulate again.
  void step_and_clear(std::span<float> weights, std::span<float> grads, float lr, size_t begin, size_t end,
                      float divisor);
  // The weights step() would give on elements [begin, end), written to out[begin, end); the velocity
  // and the weights stay as they are (weight prediction from a gradient not yet applied).
  void preview(std::span<const float> weights, std::span<const float> grads, float lr, std::span<float> out,
               size_t begin, size_t end) const;
  std::span<float> velocity() { return velocity_; }  // for checkpoints and weight prediction
  const SgdOptions& options() const { return options_; }
  void set_momentum(float momentum) { options_.momentum = momentum; }

 private:
  void check_range(size_t weights, size_t grads, size_t begin, size_t end) const;
  template <class Gradient>
  void update(std::span<float> weights, size_t grads_size, float lr, size_t begin, size_t end, Gradient gradient);

  SgdOptions options_;
  std::vector<float> velocity_;
};

enum class LrShape { constant, step, cosine };
LrShape parse_lr_shape(const std::string& name);  // "constant", "step", "cosine"

struct LrSchedule {
  float base = 0.1f;
  LrShape shape = LrShape::constant;
  int64_t warmup_steps = 0;        // linear ramp from base/warmup_steps to base
  int64_t staleness_warmup_steps = 0;  // --staleness warmup: delayed stages ramp over these first steps (an epoch)
  int64_t total_steps = 1;         // cosine decays to 0 at the end
  std::vector<int64_t> milestones; // step shape: multiply by gamma at each of these steps
  float gamma = 0.1f;
};

float learning_rate(const LrSchedule& schedule, int64_t step);

}  // namespace baton
