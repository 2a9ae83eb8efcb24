// The kernels of cuda_kernels.hpp: grid-stride loops, one thread per element (per row for the
// softmax), in the same arithmetic order as layers/reference where the order changes results.
#include <cuda_runtime.h>

#include <algorithm>

#include "layers/cuda/cuda_kernels.hpp"
#include "runtime/base/cuda_check.hpp"
#include "runtime/base/device_memory.hpp"
#include "runtime/base/rng.hpp"

namespace baton::layers::cuda {
namespace {

constexpr int kThreads = 256;

cudaStream_t stream() { return static_cast<cudaStream_t>(device::stream()); }

unsigned blocks_for(int64_t count) {
  return unsigned(std::clamp<int64_t>((count + kThreads - 1) / kThreads, 1, 65535));
}

// Launches `kernel` over `count` elements on the process's stream and checks the launch.
template <class Kernel, class... Args>
void launch(Kernel kernel, int64_t count, Args... args) {
  if (count <= 0) return;
  kernel<<<blocks_for(count), kThreads, 0, stream()>>>(count, args...);
  BATON_CHECK_CUDA(cudaGetLastError());
}

#define BATON_GRID_STRIDE(i, count) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (count); i += int64_t(gridDim.x) * blockDim.x)

__global__ void relu_forward_kernel(int64_t count, const float* x, float* y) {
  BATON_GRID_STRIDE(i, count) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void relu_backward_kernel(int64_t count, const float* y, const float* dy, float* dx) {
  BATON_GRID_STRIDE(i, count) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void sum_masked_kernel(int64_t count, const float* a, const float* b, const float* relu_output,
                                  float* dst) {
  BATON_GRID_STRIDE(i, count) {
    const float sum = b ? a[i] + b[i] : a[i];
    dst[i] = relu_output && !(relu_output[i] > 0.0f) ? 0.0f : sum;
  }
}

__global__ void accumulate_kernel(int64_t count, const float* from, float* to) {
  BATON_GRID_STRIDE(i, count) to[i] += from[i];
}

__global__ void dropout_kernel(int64_t count, float probability, float scale, uint64_t key, const float* in,
                               float* out) {
  BATON_GRID_STRIDE(i, count) out[i] = uniform01(key, uint64_t(i)) >= probability ? in[i] * scale : 0.0f;
}

__global__ void add_bias_rows_kernel(int64_t count, const float* bias, float* y, int64_t columns) {
  BATON_GRID_STRIDE(i, count) y[i] += bias[i % columns];
}

// One thread per column, rows summed in order.
__global__ void add_column_sums_kernel(int64_t columns, const float* x, float* sums, int64_t rows) {
  BATON_GRID_STRIDE(c, columns) {
    float sum = 0.0f;
    for (int64_t r = 0; r < rows; ++r) sum += x[r * columns + c];
    sums[c] += sum;
  }
}

__global__ void global_avgpool_forward_kernel(int64_t planes, const float* x, float* y, int64_t plane_size) {
  BATON_GRID_STRIDE(p, planes) {
    float sum = 0.0f;
    for (int64_t s = 0; s < plane_size; ++s) sum += x[p * plane_size + s];
    y[p] = sum / float(plane_size);
  }
}

__global__ void global_avgpool_backward_kernel(int64_t count, const float* dy, float* dx, int64_t plane_size) {
  BATON_GRID_STRIDE(i, count) dx[i] = dy[i / plane_size] / float(plane_size);
}

__global__ void shortcut_pad_forward_kernel(int64_t count, ShortcutShape s, const float* x, float* y) {
  const int64_t pad = (s.y_channels - s.x_channels) / 2;
  BATON_GRID_STRIDE(i, count) {
    const int64_t ox = i % s.y_width, oy = i / s.y_width % s.y_height, c = i / (s.y_width * s.y_height) % s.y_channels;
    const int64_t n = i / (s.y_width * s.y_height * s.y_channels), xc = c - pad;
    y[i] = xc >= 0 && xc < s.x_channels
               ? x[((n * s.x_channels + xc) * s.x_height + oy * s.stride) * s.x_width + ox * s.stride]
               : 0.0f;
  }
}

__global__ void shortcut_pad_backward_kernel(int64_t count, ShortcutShape s, const float* dy, float* dx) {
  const int64_t pad = (s.y_channels - s.x_channels) / 2;
  BATON_GRID_STRIDE(i, count) {
    const int64_t ix = i % s.x_width, iy = i / s.x_width % s.x_height, c = i / (s.x_width * s.x_height) % s.x_channels;
    const int64_t n = i / (s.x_width * s.x_height * s.x_channels), oy = iy / s.stride, ox = ix / s.stride;
    const bool taken = iy % s.stride == 0 && ix % s.stride == 0 && oy < s.y_height && ox < s.y_width;
    dx[i] = taken ? dy[((n * s.y_channels + c + pad) * s.y_height + oy) * s.y_width + ox] : 0.0f;
  }
}

__device__ float log_sum_exp(const float* row, int64_t classes) {
  float top = row[0];
  for (int64_t k = 1; k < classes; ++k) top = fmaxf(top, row[k]);
  float sum = 0.0f;
  for (int64_t k = 0; k < classes; ++k) sum += expf(row[k] - top);
  return top + logf(sum);
}

__global__ void softmax_xent_forward_kernel(int64_t samples, const float* logits, const int32_t* labels, float* loss,
                                            int64_t classes) {
  BATON_GRID_STRIDE(n, samples) {
    const float* row = logits + n * classes;
    loss[n] = log_sum_exp(row, classes) - row[labels[n]];
  }
}

__global__ void softmax_xent_backward_kernel(int64_t samples, const float* logits, const int32_t* labels,
                                             float loss_scale, float* dlogits, int64_t classes) {
  BATON_GRID_STRIDE(n, samples) {
    const float* row = logits + n * classes;
    const float lse = log_sum_exp(row, classes);
    for (int64_t k = 0; k < classes; ++k)
      dlogits[n * classes + k] = loss_scale * (expf(row[k] - lse) - (k == labels[n] ? 1.0f : 0.0f));
  }
}

}  // namespace

void relu_forward(const float* x, float* y, int64_t count) { launch(relu_forward_kernel, count, x, y); }

void relu_backward(const float* y, const float* dy, float* dx, int64_t count) {
  launch(relu_backward_kernel, count, y, dy, dx);
}

void sum_masked(const float* a, const float* b, const float* relu_output, float* dst, int64_t count) {
  launch(sum_masked_kernel, count, a, b, relu_output, dst);
}

void accumulate(const float* from, float* to, int64_t count) { launch(accumulate_kernel, count, from, to); }

void dropout(float probability, uint64_t random_key, const float* in, float* out, int64_t count) {
  const float scale = probability < 1.0f ? 1.0f / (1.0f - probability) : 0.0f;
  launch(dropout_kernel, count, probability, scale, random_key, in, out);
}

void add_bias_rows(const float* bias, float* y, int64_t rows, int64_t columns) {
  launch(add_bias_rows_kernel, rows * columns, bias, y, columns);
}

void add_column_sums(const float* x, float* sums, int64_t rows, int64_t columns) {
  launch(add_column_sums_kernel, columns, x, sums, rows);
}

void global_avgpool_forward(const float* x, float* y, int64_t planes, int64_t plane_size) {
  launch(global_avgpool_forward_kernel, planes, x, y, plane_size);
}

void global_avgpool_backward(const float* dy, float* dx, int64_t planes, int64_t plane_size) {
  launch(global_avgpool_backward_kernel, planes * plane_size, dy, dx, plane_size);
}

void shortcut_pad_forward(const ShortcutShape& shape, const float* x, float* y) {
  launch(shortcut_pad_forward_kernel, shape.n * shape.y_channels * shape.y_height * shape.y_width, shape, x, y);
}

void shortcut_pad_backward(const ShortcutShape& shape, const float* dy, float* dx) {
  launch(shortcut_pad_backward_kernel, shape.n * shape.x_channels * shape.x_height * shape.x_width, shape, dy, dx);
}

void softmax_xent_forward(const float* logits, const int32_t* labels, float* loss, int64_t samples, int64_t classes) {
  launch(softmax_xent_forward_kernel, samples, logits, labels, loss, classes);
}

void softmax_xent_backward(const float* logits, const int32_t* labels, float loss_scale, float* dlogits,
                           int64_t samples, int64_t classes) {
  launch(softmax_xent_backward_kernel, samples, logits, labels, loss_scale, dlogits, classes);
}

}  // namespace baton::layers::cuda
