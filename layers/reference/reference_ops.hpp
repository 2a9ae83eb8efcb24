// The oracle: plain nested-loop kernels for every layer kind on plain row-major tensors (NCHW
// images, N×F features), templated on the scalar type (float for the reference backend, double
// for gradient checks). Written for obviousness, not speed. backward_data overwrites its output;
// backward_weights accumulates (+=) into gradients laid out exactly like param_specs().
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "layers/layer_spec.hpp"
#include "runtime/base/error.hpp"
#include "runtime/base/rng.hpp"
#include "runtime/base/tensor.hpp"

namespace baton::layers::reference {

// ---- shapes and loop helpers -------------------------------------------------------------------

// An NCHW shape; an N×F feature tensor reads as {N, F, 1, 1}.
struct Image {
  int64_t n, c, h, w;
  int64_t plane() const { return h * w; }
  int64_t count() const { return n * c * h * w; }
  int64_t at(int64_t in, int64_t ic, int64_t ih, int64_t iw) const { return ((in * c + ic) * h + ih) * w + iw; }
};

inline Image image_of(const Dims& dims) {
  BATON_CHECK(dims.size() == 2 || dims.size() == 4,
              "the reference kernels take N×F or N×C×H×W tensors, not " << to_string(dims));
  if (dims.size() == 2) return {dims[0], dims[1], 1, 1};
  return {dims[0], dims[1], dims[2], dims[3]};
}

// Calls visit(channel, index) for every element of `image`, in row-major order.
template <class Visit>
void for_each_in_channels(const Image& image, Visit visit) {
  for (int64_t n = 0; n < image.n; ++n)
    for (int64_t c = 0; c < image.c; ++c)
      for (int64_t s = 0; s < image.plane(); ++s) visit(c, (n * image.c + c) * image.plane() + s);
}

template <class T>
void copy(int64_t count, const T* from, T* to) {
  std::copy_n(from, count, to);
}

// Calls tap(x_index, weight_index, y_index) for every multiply-add of a convolution whose input
// position lies inside the image; taps on the zero padding add nothing and are skipped.
template <class Tap>
void for_each_conv_tap(const Conv2dSpec& spec, const Dims& x_dims, Tap tap) {
  const Image x = image_of(x_dims);
  const Image y = image_of(infer_output_dims(spec, {x_dims}));
  const int64_t k = spec.kernel;
  for (int64_t n = 0; n < y.n; ++n)
    for (int64_t o = 0; o < y.c; ++o)
      for (int64_t oy = 0; oy < y.h; ++oy)
        for (int64_t ox = 0; ox < y.w; ++ox)
          for (int64_t i = 0; i < x.c; ++i)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                int64_t iy = oy * spec.stride - spec.padding + ky;
                int64_t ix = ox * spec.stride - spec.padding + kx;
                if (iy < 0 || iy >= x.h || ix < 0 || ix >= x.w) continue;
                tap(x.at(n, i, iy, ix), ((o * x.c + i) * k + ky) * k + kx, y.at(n, o, oy, ox));
              }
}

// Calls tap(y_index, x_index) for every position of every pooling window, in row-major window
// order; x_index is -1 where the window lies on the padding.
template <class PoolSpec, class Tap>
void for_each_window_tap(const PoolSpec& spec, const Dims& x_dims, Tap tap) {
  const Image x = image_of(x_dims);
  const Image y = image_of(infer_output_dims(spec, {x_dims}));
  for (int64_t n = 0; n < y.n; ++n)
    for (int64_t c = 0; c < y.c; ++c)
      for (int64_t oy = 0; oy < y.h; ++oy)
        for (int64_t ox = 0; ox < y.w; ++ox)
          for (int64_t ky = 0; ky < spec.kernel; ++ky)
            for (int64_t kx = 0; kx < spec.kernel; ++kx) {
              int64_t iy = oy * spec.stride - spec.padding + ky;
              int64_t ix = ox * spec.stride - spec.padding + kx;
              bool inside = iy >= 0 && iy < x.h && ix >= 0 && ix < x.w;
              tap(y.at(n, c, oy, ox), inside ? x.at(n, c, iy, ix) : int64_t{-1});
            }
}

// ---- conv2d: cross-correlation with zero padding; weight OIHW, optional bias[O] ----------------

template <class T>
void conv2d_forward(const Conv2dSpec& spec, const Dims& x_dims, const T* x, const T* weight, const T* bias_or_null,
                    T* y) {
  BATON_CHECK(spec.bias == (bias_or_null != nullptr), "conv2d: the bias pointer must be given iff the spec has a bias");
  const Image out = image_of(infer_output_dims(spec, {x_dims}));
  for_each_in_channels(out, [&](int64_t o, int64_t i) { y[i] = bias_or_null ? bias_or_null[o] : T(0); });
  for_each_conv_tap(spec, x_dims, [&](int64_t xi, int64_t wi, int64_t yi) { y[yi] += x[xi] * weight[wi]; });
}

template <class T>
void conv2d_backward_data(const Conv2dSpec& spec, const Dims& x_dims, const T* weight, const T* dy, T* dx) {
  std::fill_n(dx, element_count(x_dims), T(0));
  for_each_conv_tap(spec, x_dims, [&](int64_t xi, int64_t wi, int64_t yi) { dx[xi] += weight[wi] * dy[yi]; });
}

template <class T>
void conv2d_backward_weights(const Conv2dSpec& spec, const Dims& x_dims, const T* x, const T* dy, T* dweight,
                             T* dbias_or_null) {
  BATON_CHECK(spec.bias == (dbias_or_null != nullptr),
              "conv2d: the bias gradient pointer must be given iff the spec has a bias");
  for_each_conv_tap(spec, x_dims, [&](int64_t xi, int64_t wi, int64_t yi) { dweight[wi] += x[xi] * dy[yi]; });
  if (dbias_or_null == nullptr) return;
  const Image out = image_of(infer_output_dims(spec, {x_dims}));
  for_each_in_channels(out, [&](int64_t o, int64_t i) { dbias_or_null[o] += dy[i]; });
}

// ---- linear: y = x W^T + b, W {out, in} --------------------------------------------------------
// y[n, o] = b[o] + sum_i x[n, i] W[o, i] is exactly a 1×1 convolution of the {N, in, 1, 1} image
// with the OIHW weight {out, in, 1, 1}, so the conv loops above serve.

inline Conv2dSpec linear_as_conv(const LinearSpec& spec) {
  return Conv2dSpec{.out_channels = spec.out_features, .kernel = 1, .stride = 1, .padding = 0, .bias = spec.bias};
}

inline Dims linear_as_image(const Dims& x_dims) {
  BATON_CHECK(x_dims.size() == 2, "linear needs an N×F input but got " << to_string(x_dims));
  return {x_dims[0], x_dims[1], 1, 1};
}

template <class T>
void linear_forward(const LinearSpec& spec, const Dims& x_dims, const T* x, const T* weight, const T* bias_or_null,
                    T* y) {
  conv2d_forward(linear_as_conv(spec), linear_as_image(x_dims), x, weight, bias_or_null, y);
}

template <class T>
void linear_backward_data(const LinearSpec& spec, const Dims& x_dims, const T* weight, const T* dy, T* dx) {
  conv2d_backward_data(linear_as_conv(spec), linear_as_image(x_dims), weight, dy, dx);
}

template <class T>
void linear_backward_weights(const LinearSpec& spec, const Dims& x_dims, const T* x, const T* dy, T* dweight,
                             T* dbias_or_null) {
  conv2d_backward_weights(linear_as_conv(spec), linear_as_image(x_dims), x, dy, dweight, dbias_or_null);
}

// ---- relu --------------------------------------------------------------------------------------

template <class T>
void relu_forward(int64_t count, const T* x, T* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

// Reads the forward's output y (y > 0 exactly where x > 0), as PyTorch does.
template <class T>
void relu_backward_data(int64_t count, const T* y, const T* dy, T* dx) {
  for (int64_t i = 0; i < count; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

// ---- max pooling: padding is -inf; argmax[y index] = x index of the first maximum --------------

template <class T>
void maxpool_forward(const MaxPoolSpec& spec, const Dims& x_dims, const T* x, T* y, int64_t* argmax) {
  BATON_CHECK(2 * spec.padding <= spec.kernel,
              "maxpool padding " << spec.padding << " must be at most half the kernel " << spec.kernel);
  const int64_t y_count = element_count(infer_output_dims(spec, {x_dims}));
  std::fill_n(y, y_count, -std::numeric_limits<T>::infinity());
  std::fill_n(argmax, y_count, int64_t{-1});
  for_each_window_tap(spec, x_dims, [&](int64_t yi, int64_t xi) {
    if (xi >= 0 && x[xi] > y[yi]) {  // strict: ties keep the earlier position
      y[yi] = x[xi];
      argmax[yi] = xi;
    }
  });
}

template <class T>
void maxpool_backward_data(const MaxPoolSpec& spec, const Dims& x_dims, const int64_t* argmax, const T* dy, T* dx) {
  std::fill_n(dx, element_count(x_dims), T(0));
  const int64_t y_count = element_count(infer_output_dims(spec, {x_dims}));
  for (int64_t yi = 0; yi < y_count; ++yi)
    if (argmax[yi] >= 0) dx[argmax[yi]] += dy[yi];
}

// ---- average pooling: padding counts as zeros, every window divides by kernel² ----------------

template <class T>
void avgpool_forward(const AvgPoolSpec& spec, const Dims& x_dims, const T* x, T* y) {
  const T weight = T(1) / T(spec.kernel * spec.kernel);
  std::fill_n(y, element_count(infer_output_dims(spec, {x_dims})), T(0));
  for_each_window_tap(spec, x_dims, [&](int64_t yi, int64_t xi) {
    if (xi >= 0) y[yi] += weight * x[xi];
  });
}

template <class T>
void avgpool_backward_data(const AvgPoolSpec& spec, const Dims& x_dims, const T* dy, T* dx) {
  const T weight = T(1) / T(spec.kernel * spec.kernel);
  std::fill_n(dx, element_count(x_dims), T(0));
  for_each_window_tap(spec, x_dims, [&](int64_t yi, int64_t xi) {
    if (xi >= 0) dx[xi] += weight * dy[yi];
  });
}

// ---- global average pooling {N,C,H,W} -> {N,C} --------------------------------------------------

template <class T>
void global_avgpool_forward(const Dims& x_dims, const T* x, T* y) {
  const Image in = image_of(x_dims);
  for (int64_t nc = 0; nc < in.n * in.c; ++nc) {
    T sum = 0;
    for (int64_t s = 0; s < in.plane(); ++s) sum += x[nc * in.plane() + s];
    y[nc] = sum / T(in.plane());
  }
}

template <class T>
void global_avgpool_backward_data(const Dims& x_dims, const T* dy, T* dx) {
  const Image in = image_of(x_dims);
  for (int64_t nc = 0; nc < in.n * in.c; ++nc)
    for (int64_t s = 0; s < in.plane(); ++s) dx[nc * in.plane() + s] = dy[nc] / T(in.plane());
}

// ---- batch norm over N,H,W (or N for 2-D input) per channel ------------------------------------
// Parameters: gamma[C] then beta[C]. State: running_mean[C] then running_var[C]. A training forward
// saves the batch mean and 1/sqrt(var + eps) per channel for the backward.

// y = gamma * (x - mean) * invstd + beta, per channel.
template <class T>
void batchnorm_normalize(const Image& image, const T* x, const T* gamma_beta, const T* mean, const T* invstd, T* y) {
  const T* gamma = gamma_beta;
  const T* beta = gamma_beta + image.c;
  for_each_in_channels(image, [&](int64_t c, int64_t i) { y[i] = gamma[c] * (x[i] - mean[c]) * invstd[c] + beta[c]; });
}

// Batch mean and biased variance per channel, in two passes.
template <class T>
void batchnorm_batch_stats(const Image& image, const T* x, std::vector<T>& mean, std::vector<T>& variance) {
  const T per_channel = T(image.n * image.plane());
  mean.assign(image.c, T(0));
  variance.assign(image.c, T(0));
  for_each_in_channels(image, [&](int64_t c, int64_t i) { mean[c] += x[i]; });
  for (T& m : mean) m /= per_channel;
  for_each_in_channels(image, [&](int64_t c, int64_t i) { variance[c] += (x[i] - mean[c]) * (x[i] - mean[c]); });
  for (T& v : variance) v /= per_channel;
}

// running_or_null: [running_mean C][running_var C], updated like PyTorch (unbiased variance).
template <class T>
void batchnorm_forward_train(const BatchNormSpec& spec, const Dims& x_dims, const T* x, const T* gamma_beta,
                             T* running_or_null, T* y, T* saved_mean, T* saved_invstd) {
  const Image image = image_of(x_dims);
  const int64_t per_channel = image.n * image.plane();
  BATON_CHECK(per_channel > 1, "batch norm in training needs more than one value per channel but got input "
                                   << to_string(x_dims));
  std::vector<T> mean, variance;
  batchnorm_batch_stats(image, x, mean, variance);
  for (int64_t c = 0; c < image.c; ++c) {
    saved_mean[c] = mean[c];
    saved_invstd[c] = T(1) / std::sqrt(variance[c] + T(spec.epsilon));
  }
  batchnorm_normalize(image, x, gamma_beta, saved_mean, saved_invstd, y);
  if (running_or_null == nullptr) return;
  const T momentum = T(spec.momentum);
  const T unbiased = T(per_channel) / T(per_channel - 1);
  for (int64_t c = 0; c < image.c; ++c) {
    T& running_mean = running_or_null[c];
    T& running_var = running_or_null[image.c + c];
    running_mean = (T(1) - momentum) * running_mean + momentum * mean[c];
    running_var = (T(1) - momentum) * running_var + momentum * variance[c] * unbiased;
  }
}

template <class T>
void batchnorm_forward_eval(const BatchNormSpec& spec, const Dims& x_dims, const T* x, const T* gamma_beta,
                            const T* running, T* y) {
  const Image image = image_of(x_dims);
  std::vector<T> invstd(image.c);
  for (int64_t c = 0; c < image.c; ++c) invstd[c] = T(1) / std::sqrt(running[image.c + c] + T(spec.epsilon));
  batchnorm_normalize(image, x, gamma_beta, running, invstd.data(), y);
}

// Per channel: sum of dy and sum of dy * xhat, where xhat = (x - mean) * invstd.
template <class T>
void batchnorm_grad_sums(const Image& image, const T* x, const T* mean, const T* invstd, const T* dy,
                         std::vector<T>& sum_dy, std::vector<T>& sum_dy_xhat) {
  sum_dy.assign(image.c, T(0));
  sum_dy_xhat.assign(image.c, T(0));
  for_each_in_channels(image, [&](int64_t c, int64_t i) {
    sum_dy[c] += dy[i];
    sum_dy_xhat[c] += dy[i] * (x[i] - mean[c]) * invstd[c];
  });
}

// Through the batch statistics: dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)).
template <class T>
void batchnorm_backward_data(const Dims& x_dims, const T* x, const T* gamma_beta, const T* saved_mean,
                             const T* saved_invstd, const T* dy, T* dx) {
  const Image image = image_of(x_dims);
  const T per_channel = T(image.n * image.plane());
  std::vector<T> sum_dy, sum_dy_xhat;
  batchnorm_grad_sums(image, x, saved_mean, saved_invstd, dy, sum_dy, sum_dy_xhat);
  for_each_in_channels(image, [&](int64_t c, int64_t i) {
    T xhat = (x[i] - saved_mean[c]) * saved_invstd[c];
    dx[i] = gamma_beta[c] * saved_invstd[c] * (dy[i] - sum_dy[c] / per_channel - xhat * sum_dy_xhat[c] / per_channel);
  });
}

// dgamma += sum(dy * xhat), dbeta += sum(dy); dgamma_dbeta is [dgamma C][dbeta C].
template <class T>
void batchnorm_backward_weights(const Dims& x_dims, const T* x, const T* saved_mean, const T* saved_invstd,
                                const T* dy, T* dgamma_dbeta) {
  const Image image = image_of(x_dims);
  std::vector<T> sum_dy, sum_dy_xhat;
  batchnorm_grad_sums(image, x, saved_mean, saved_invstd, dy, sum_dy, sum_dy_xhat);
  for (int64_t c = 0; c < image.c; ++c) {
    dgamma_dbeta[c] += sum_dy_xhat[c];
    dgamma_dbeta[image.c + c] += sum_dy[c];
  }
}

// ---- dropout: element i (row-major) survives iff uniform01(key, i) >= p, scaled by 1/(1-p) ----

inline bool dropout_keeps(float probability, uint64_t random_key, int64_t index) {
  return uniform01(random_key, static_cast<uint64_t>(index)) >= probability;
}

// Forward (in = x, out = y) and backward (in = dy, out = dx) apply the same mask and scale.
template <class T>
void dropout_apply(const DropoutSpec& spec, int64_t count, uint64_t random_key, const T* in, T* out) {
  BATON_CHECK(spec.probability >= 0.0f && spec.probability <= 1.0f,
              "dropout probability must lie in [0, 1] but is " << spec.probability);
  const T scale = spec.probability < 1.0f ? T(1) / (T(1) - T(spec.probability)) : T(0);
  for (int64_t i = 0; i < count; ++i) out[i] = dropout_keeps(spec.probability, random_key, i) ? in[i] * scale : T(0);
}

template <class T>
void dropout_forward(const DropoutSpec& spec, int64_t count, uint64_t random_key, const T* x, T* y) {
  dropout_apply(spec, count, random_key, x, y);
}

template <class T>
void dropout_backward_data(const DropoutSpec& spec, int64_t count, uint64_t random_key, const T* dy, T* dx) {
  dropout_apply(spec, count, random_key, dy, dx);
}

// ---- flatten {N,C,H,W} -> {N,C*H*W}: the row-major order is unchanged ---------------------------

template <class T>
void flatten_forward(const Dims& x_dims, const T* x, T* y) {
  copy(element_count(x_dims), x, y);
}

template <class T>
void flatten_backward_data(const Dims& x_dims, const T* dy, T* dx) {
  copy(element_count(x_dims), dy, dx);
}

// ---- residual add ------------------------------------------------------------------------------

template <class T>
void add_forward(int64_t count, const T* a, const T* b, T* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
}

// Both input gradients equal dy; a null one is not needed and left alone.
template <class T>
void add_backward_data(int64_t count, const T* dy, T* da_or_null, T* db_or_null) {
  if (da_or_null) copy(count, dy, da_or_null);
  if (db_or_null) copy(count, dy, db_or_null);
}

// ---- ResNet option-A shortcut: y[n, c + pad, h, w] = x[n, c, h*stride, w*stride], zeros elsewhere

// Calls tap(x_index, y_index) for every element the shortcut copies.
template <class Tap>
void for_each_shortcut_tap(const ShortcutPadSpec& spec, const Dims& x_dims, Tap tap) {
  const Image x = image_of(x_dims);
  const Image y = image_of(infer_output_dims(spec, {x_dims}));
  const int64_t pad = (y.c - x.c) / 2;
  for (int64_t n = 0; n < x.n; ++n)
    for (int64_t c = 0; c < x.c; ++c)
      for (int64_t oy = 0; oy < y.h; ++oy)
        for (int64_t ox = 0; ox < y.w; ++ox)
          tap(x.at(n, c, oy * spec.stride, ox * spec.stride), y.at(n, c + pad, oy, ox));
}

template <class T>
void shortcut_pad_forward(const ShortcutPadSpec& spec, const Dims& x_dims, const T* x, T* y) {
  std::fill_n(y, element_count(infer_output_dims(spec, {x_dims})), T(0));
  for_each_shortcut_tap(spec, x_dims, [&](int64_t xi, int64_t yi) { y[yi] = x[xi]; });
}

template <class T>
void shortcut_pad_backward_data(const ShortcutPadSpec& spec, const Dims& x_dims, const T* dy, T* dx) {
  std::fill_n(dx, element_count(x_dims), T(0));
  for_each_shortcut_tap(spec, x_dims, [&](int64_t xi, int64_t yi) { dx[xi] = dy[yi]; });
}

// ---- LRN across channels -----------------------------------------------------------------------
// y_c = x_c * d_c^-beta with d_c = k + alpha/size * sum of x_c'^2 over the window
// c' in [c - (size-1)/2, c + size/2], clipped to [0, C).

struct ChannelWindow {
  int64_t begin, end;  // [begin, end)
};

inline ChannelWindow lrn_window(const LrnSpec& spec, int64_t channels, int64_t c) {
  return {std::max<int64_t>(0, c - (spec.size - 1) / 2), std::min<int64_t>(channels, c + spec.size / 2 + 1)};
}

// Calls visit(i, j) for every element i and every element j in i's channel window (same n, h, w).
template <class Visit>
void for_each_lrn_pair(const LrnSpec& spec, const Image& image, Visit visit) {
  for (int64_t n = 0; n < image.n; ++n)
    for (int64_t c = 0; c < image.c; ++c) {
      const ChannelWindow window = lrn_window(spec, image.c, c);
      for (int64_t s = 0; s < image.plane(); ++s)
        for (int64_t cw = window.begin; cw < window.end; ++cw)
          visit((n * image.c + c) * image.plane() + s, (n * image.c + cw) * image.plane() + s);
    }
}

// d for every element of x.
template <class T>
std::vector<T> lrn_denominators(const LrnSpec& spec, const Image& image, const T* x) {
  std::vector<T> window_sum(image.count(), T(0));
  for_each_lrn_pair(spec, image, [&](int64_t i, int64_t j) { window_sum[i] += x[j] * x[j]; });
  std::vector<T> d(image.count());
  for (int64_t i = 0; i < image.count(); ++i) d[i] = T(spec.k) + T(spec.alpha) / T(spec.size) * window_sum[i];
  return d;
}

template <class T>
void lrn_forward(const LrnSpec& spec, const Dims& x_dims, const T* x, T* y) {
  const Image image = image_of(x_dims);
  const std::vector<T> d = lrn_denominators(spec, image, x);
  for (int64_t i = 0; i < image.count(); ++i) y[i] = x[i] * std::pow(d[i], -T(spec.beta));
}

// dx_j = dy_j d_j^-beta + sum over the i whose window holds j of g_i * 2 alpha/size * x_j,
// where g_i = dy_i * x_i * (-beta) * d_i^(-beta-1) is the gradient through d_i.
template <class T>
void lrn_backward_data(const LrnSpec& spec, const Dims& x_dims, const T* x, const T* dy, T* dx) {
  const Image image = image_of(x_dims);
  const std::vector<T> d = lrn_denominators(spec, image, x);
  const T beta = T(spec.beta);
  std::vector<T> through_d(image.count());
  for (int64_t i = 0; i < image.count(); ++i) {
    dx[i] = dy[i] * std::pow(d[i], -beta);
    through_d[i] = dy[i] * x[i] * -beta * std::pow(d[i], -beta - T(1)) * T(2) * T(spec.alpha) / T(spec.size);
  }
  for_each_lrn_pair(spec, image, [&](int64_t i, int64_t j) { dx[j] += through_d[i] * x[j]; });
}

// ---- softmax cross-entropy: logits {N, K}, labels in [0, K), per-sample loss {N} --------------

template <class T>
T log_sum_exp(const T* row, int64_t count) {
  const T top = *std::max_element(row, row + count);
  T sum = 0;
  for (int64_t k = 0; k < count; ++k) sum += std::exp(row[k] - top);
  return top + std::log(sum);
}

inline void check_label(int32_t label, int64_t classes, int64_t sample) {
  BATON_CHECK(label >= 0 && label < classes,
              "sample " << sample << " has label " << label << " but the model has " << classes << " classes");
}

// loss[n] = -log softmax(logits[n])[label[n]] = logsumexp(logits[n]) - logits[n, label[n]].
template <class T>
void softmax_xent_forward(const Dims& logit_dims, const T* logits, const int32_t* labels, T* loss) {
  const Image image = image_of(logit_dims);
  for (int64_t n = 0; n < image.n; ++n) {
    check_label(labels[n], image.c, n);
    const T* row = logits + n * image.c;
    loss[n] = log_sum_exp(row, image.c) - row[labels[n]];
  }
}

// d logits = loss_scale * (softmax - onehot(label)): the gradient of loss_scale * sum of losses.
template <class T>
void softmax_xent_backward_data(const Dims& logit_dims, const T* logits, const int32_t* labels, T loss_scale,
                                T* dlogits) {
  const Image image = image_of(logit_dims);
  for (int64_t n = 0; n < image.n; ++n) {
    check_label(labels[n], image.c, n);
    const T* row = logits + n * image.c;
    const T lse = log_sum_exp(row, image.c);
    for (int64_t k = 0; k < image.c; ++k) {
      T onehot = k == labels[n] ? T(1) : T(0);
      dlogits[n * image.c + k] = loss_scale * (std::exp(row[k] - lse) - onehot);
    }
  }
}

}  // namespace baton::layers::reference
