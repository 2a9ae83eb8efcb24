// baton's own CUDA kernels, for the training ops neither cuDNN nor cuBLAS has: element-wise
// passes, gradient sums at forks, dropout with the CPU backend's mask, option-A shortcuts,
// softmax cross-entropy, bias rows. All run on the process's stream and return at once.
#pragma once

#include <cstdint>

namespace baton::layers::cuda {

void relu_forward(const float* x, float* y, int64_t count);
void relu_backward(const float* y, const float* dy, float* dx, int64_t count);  // dx = y > 0 ? dy : 0
// dst = a + b (b may be null), then zero wherever relu_output <= 0 (when given).
void sum_masked(const float* a, const float* b, const float* relu_output, float* dst, int64_t count);
void accumulate(const float* from, float* to, int64_t count);  // to += from
// Keeps element i iff uniform01(key, i) >= probability, scaled by 1/(1-probability): the CPU's mask.
void dropout(float probability, uint64_t random_key, const float* in, float* out, int64_t count);
void add_bias_rows(const float* bias, float* y, int64_t rows, int64_t columns);     // y[r, c] += bias[c]
void add_column_sums(const float* x, float* sums, int64_t rows, int64_t columns);   // sums[c] += Σ_r x[r, c]
void global_avgpool_forward(const float* x, float* y, int64_t planes, int64_t plane_size);
void global_avgpool_backward(const float* dy, float* dx, int64_t planes, int64_t plane_size);

struct ShortcutShape {
  int64_t n, x_channels, x_height, x_width, y_channels, y_height, y_width, stride;
};
void shortcut_pad_forward(const ShortcutShape& shape, const float* x, float* y);
void shortcut_pad_backward(const ShortcutShape& shape, const float* dy, float* dx);

// loss[n] = logsumexp(logits[n]) - logits[n, label[n]]; labels are device memory, already checked.
void softmax_xent_forward(const float* logits, const int32_t* labels, float* loss, int64_t samples, int64_t classes);
// dlogits = loss_scale * (softmax(logits) - onehot(label)).
void softmax_xent_backward(const float* logits, const int32_t* labels, float loss_scale, float* dlogits,
                           int64_t samples, int64_t classes);

}  // namespace baton::layers::cuda
