// Softmax cross-entropy over plain N×K logits: per-sample losses forward, and the gradient of
// loss_scale × (sum of losses) backward, recomputing the softmax from the saved logits.
#include <cmath>

#include "layers/cpu/cpu_layers.hpp"

namespace baton::layers::cpu {
namespace {

class SoftmaxCrossEntropy final : public Layer {
 public:
  LayerIO setup(const std::vector<TensorSpec>& inputs, int /*slots*/) override {
    const Dims& in = inputs[0].dims;
    batch_ = in[0];
    classes_ = in[1];
    return LayerIO{{TensorSpec{in, nullptr}}, TensorSpec{infer_output_dims(SoftmaxCrossEntropySpec{}, {in}), nullptr}};
  }

  void forward(const ForwardArgs& a) override {
    const float* logits = a.inputs[0]->data();
    float* losses = a.output->data();
#pragma omp parallel for
    for (int64_t n = 0; n < batch_; ++n) {
      const float* row = logits + n * classes_;
      losses[n] = log_sum_exp(row) - row[label(a.labels, n)];
    }
  }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] == nullptr) return;
    const float* logits = a.inputs[0]->data();
    float* grad = a.grad_inputs[0]->data();
#pragma omp parallel for
    for (int64_t n = 0; n < batch_; ++n) {
      const float* row = logits + n * classes_;
      float* grad_row = grad + n * classes_;
      const float lse = log_sum_exp(row);
      for (int64_t k = 0; k < classes_; ++k) grad_row[k] = a.loss_scale * std::exp(row[k] - lse);
      grad_row[label(a.labels, n)] -= a.loss_scale;
    }
  }

 private:
  float log_sum_exp(const float* row) const {
    float max = row[0];
    for (int64_t k = 1; k < classes_; ++k) max = std::max(max, row[k]);
    float sum = 0;
    for (int64_t k = 0; k < classes_; ++k) sum += std::exp(row[k] - max);
    return max + std::log(sum);
  }

  int64_t label(const int32_t* labels, int64_t n) const {
    int64_t l = labels[n];
    BATON_CHECK(l >= 0 && l < classes_, "label " << l << " of sample " << n << " is outside the model's " << classes_
                                                  << " classes; the data set and the model disagree on the class count");
    return l;
  }

  int64_t batch_ = 0, classes_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_softmax_cross_entropy() { return std::make_unique<SoftmaxCrossEntropy>(); }

}  // namespace baton::layers::cpu
