// Max pooling whose windows tile the image (kernel = stride, no padding) on nchw, nChw8c or
// nChw16c data, as plain loops the compiler vectorises across the channel block. oneDNN's kernel
// zero-fills the input gradient and then scatters into it; here every element is written once,
// which made LeNet-5's first pooling 3-4x faster (bench/README). Other windows use oneDNN.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "layers/cpu/cpu_layers.hpp"

namespace baton::layers::cpu {
namespace {

class TiledMaxPool final : public Layer {
 public:
  explicit TiledMaxPool(const MaxPoolSpec& spec) : k_(spec.kernel) {}

  Absorbed absorb_relu(ReluSide side) override {
    if (side != ReluSide::before) return Absorbed::no;
    relu_ = true;
    return Absorbed::both_passes;
  }

  LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) override {
    in_ = inputs[0].dims;
    out_ = infer_output_dims(MaxPoolSpec{k_, k_, 0}, {in_});
    block_ = channel_block(inputs[0]);
    BATON_CHECK(block_ > 0 && k_ * k_ <= 256, "tiled max pooling needs a channel-blocked input and a small window");
    const int64_t outputs = int64_t(channel_blocked_spec(out_, block_).bytes() / sizeof(float));
    winners_.assign(size_t(slots), std::vector<uint8_t>(size_t(outputs)));
    return LayerIO{{inputs[0]}, channel_blocked_spec(out_, block_)};
  }

  void forward(const ForwardArgs& a) override {
    dispatch([&](auto block, auto window) { forward_blocked<block(), window()>(a); });
  }

  void backward_data(const BackwardArgs& a) override {
    if (a.grad_inputs[0] != nullptr) dispatch([&](auto block, auto window) { backward_blocked<block(), window()>(a); });
  }

 private:
  // Calls run(block, window) with both as compile-time constants where it pays: the channel block
  // (16, 8, 1) and a 2x2 window (0: the window size is read at run time).
  template <class Run>
  void dispatch(Run run) const {
    auto with_block = [&](auto block) {
      if (k_ == 2) run(block, std::integral_constant<int, 2>{});
      else run(block, std::integral_constant<int, 0>{});
    };
    if (block_ == 16) with_block(std::integral_constant<int, 16>{});
    else if (block_ == 8) with_block(std::integral_constant<int, 8>{});
    else with_block(std::integral_constant<int, 1>{});
  }

  int64_t planes() const { return in_[0] * ((in_[1] + block_ - 1) / block_); }  // (n, channel block) pairs

  // y = max over each window (then relu when absorbed); winners_ keeps the first maximum's index.
  template <int B, int K>
  void forward_blocked(const ForwardArgs& a) {
    const float* __restrict x = a.inputs[0]->data();
    float* __restrict y = a.output->data();
    uint8_t* __restrict won = winners_[a.slot].data();
    const int64_t H = in_[2], W = in_[3], Ho = out_[2], Wo = out_[3], k = K ? K : k_;
    const bool relu = relu_;
#pragma omp parallel for
    for (int64_t p = 0; p < planes(); ++p) {
      for (int64_t ho = 0; ho < Ho; ++ho) {
        for (int64_t wo = 0; wo < Wo; ++wo) {
          const float* window = x + ((p * H + ho * k) * W + wo * k) * B;
          const int64_t o = ((p * Ho + ho) * Wo + wo) * B;
          float best[B], at[B];  // the index as float keeps the lane loops in one vector type
#pragma omp simd
          for (int l = 0; l < B; ++l) {
            best[l] = window[l];
            at[l] = 0.0f;
          }
          for (int64_t i = 0; i < k; ++i) {
            for (int64_t j = 0; j < k; ++j) {
              const float* v = window + (i * W + j) * B;
              const float here = float(i * k + j);
#pragma omp simd
              for (int l = 0; l < B; ++l) {
                const bool better = v[l] > best[l];
                best[l] = better ? v[l] : best[l];
                at[l] = better ? here : at[l];
              }
            }
          }
          const float floor = relu ? 0.0f : -INFINITY;
#pragma omp simd
          for (int l = 0; l < B; ++l) {
            y[o + l] = std::max(best[l], floor);
            won[o + l] = uint8_t(at[l]);
          }
        }
      }
    }
  }

  // dx = dy at each window's winner (gated by relu when absorbed), zero elsewhere.
  template <int B, int K>
  void backward_blocked(const BackwardArgs& a) {
    const float* __restrict dy = a.grad_output->data();
    const float* __restrict y = a.output->data();
    float* __restrict dx = a.grad_inputs[0]->data();
    const uint8_t* __restrict won = winners_[a.slot].data();
    const int64_t H = in_[2], W = in_[3], Ho = out_[2], Wo = out_[3], k = K ? K : k_;
    const bool relu = relu_;
#pragma omp parallel for
    for (int64_t p = 0; p < planes(); ++p) {
      float* plane = dx + p * H * W * B;
      // Rows and columns past the last whole window get no gradient.
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = (h < Ho * k ? Wo * k : 0); w < W; ++w)
          for (int l = 0; l < B; ++l) plane[(h * W + w) * B + l] = 0.0f;
      for (int64_t ho = 0; ho < Ho; ++ho) {
        for (int64_t wo = 0; wo < Wo; ++wo) {
          const int64_t o = ((p * Ho + ho) * Wo + wo) * B;
          float* window = plane + (ho * k * W + wo * k) * B;
          float grad[B], at[B];
#pragma omp simd
          for (int l = 0; l < B; ++l) {
            grad[l] = !relu || y[o + l] > 0.0f ? dy[o + l] : 0.0f;
            at[l] = float(won[o + l]);
          }
          for (int64_t i = 0; i < k; ++i) {
            for (int64_t j = 0; j < k; ++j) {
              float* g = window + (i * W + j) * B;
              const float here = float(i * k + j);
#pragma omp simd
              for (int l = 0; l < B; ++l) g[l] = at[l] == here ? grad[l] : 0.0f;
            }
          }
        }
      }
    }
  }

  int64_t k_;
  bool relu_ = false;  // the preceding ReLU, applied to the output
  Dims in_, out_;
  int block_ = 1;
  std::vector<std::vector<uint8_t>> winners_;  // per slot
};

}  // namespace

bool tiled_max_pool_fits(const MaxPoolSpec& spec, const TensorSpec& input) {
  return spec.kernel == spec.stride && spec.padding == 0 && channel_block(input) > 0;
}

std::unique_ptr<Layer> make_tiled_max_pool(const MaxPoolSpec& spec) { return std::make_unique<TiledMaxPool>(spec); }

}  // namespace baton::layers::cpu
