// Max pooling whose windows tile the image (kernel = stride, no padding) on nchw, nChw8c or
// nChw16c data, one vector of the channel block at a time. It writes every input-gradient element
// once (oneDNN zero-fills, then scatters) and takes the preceding ReLU into its passes; the
// selects are vector blends, not branches a random winner mispredicts. Other windows use oneDNN.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

  // The channel block as one vector (GCC and Clang vector extensions): comparisons and ?: on it
  // are lane-wise, so a window's select compiles to a blend whatever the data.
  template <int B>
  struct LanesOf {
    typedef float type __attribute__((vector_size(B * sizeof(float))));
    typedef int32_t ints __attribute__((vector_size(B * sizeof(int32_t))));
    typedef uint16_t halves __attribute__((vector_size(B * sizeof(uint16_t))));
    typedef uint8_t bytes __attribute__((vector_size(B)));
  };
  template <int B>
  using Lanes = typename LanesOf<B>::type;
  template <int B>
  using IntLanes = typename LanesOf<B>::ints;
  template <int B>
  using ByteLanes = typename LanesOf<B>::bytes;

  // Bytes to ints through 16 bits: GCC 12 widens each step with one instruction but the direct
  // conversion lane by lane.
  template <int B>
  static IntLanes<B> widen(const ByteLanes<B>& bytes) {
    return __builtin_convertvector(__builtin_convertvector(bytes, typename LanesOf<B>::halves), IntLanes<B>);
  }

  template <int B>
  static Lanes<B> load(const float* p) {
    Lanes<B> v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }

  template <int B>
  static void store(float* p, const Lanes<B>& v) {
    std::memcpy(p, &v, sizeof v);
  }

  // y = max over each window (then relu when absorbed); winners_ keeps the first maximum's index.
  template <int B, int K>
  void forward_blocked(const ForwardArgs& a) {
    using V = Lanes<B>;
    const float* __restrict x = a.inputs[0]->data();
    float* __restrict y = a.output->data();
    uint8_t* __restrict won = winners_[a.slot].data();
    const int64_t H = in_[2], W = in_[3], Ho = out_[2], Wo = out_[3], k = K ? K : k_;
    const V floor = V{} + (relu_ ? 0.0f : -INFINITY);
#pragma omp parallel for
    for (int64_t p = 0; p < planes(); ++p) {
      for (int64_t ho = 0; ho < Ho; ++ho) {
        for (int64_t wo = 0; wo < Wo; ++wo) {
          const float* window = x + ((p * H + ho * k) * W + wo * k) * B;
          const int64_t o = ((p * Ho + ho) * Wo + wo) * B;
          V best = load<B>(window);
          IntLanes<B> at{};
          for (int64_t i = 0; i < k; ++i) {
            for (int64_t j = 0; j < k; ++j) {
              const V v = load<B>(window + (i * W + j) * B);
              const auto better = v > best;
              best = better ? v : best;
              at = better ? IntLanes<B>{} + int32_t(i * k + j) : at;
            }
          }
          const auto above = best > floor;
          store<B>(y + o, above ? best : floor);
          const ByteLanes<B> winner = __builtin_convertvector(at, ByteLanes<B>);
          std::memcpy(won + o, &winner, sizeof winner);
        }
      }
    }
  }

  // dx = dy at each window's winner (gated by relu when absorbed), zero elsewhere.
  template <int B, int K>
  void backward_blocked(const BackwardArgs& a) {
    using V = Lanes<B>;
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
        for (int64_t w = (h < Ho * k ? Wo * k : 0); w < W; ++w) store<B>(plane + (h * W + w) * B, V{});
      for (int64_t ho = 0; ho < Ho; ++ho) {
        for (int64_t wo = 0; wo < Wo; ++wo) {
          const int64_t o = ((p * Ho + ho) * Wo + wo) * B;
          float* window = plane + (ho * k * W + wo * k) * B;
          const V out_grad = load<B>(dy + o);
          const V grad = relu ? (load<B>(y + o) > 0.0f ? out_grad : V{}) : out_grad;
          ByteLanes<B> winner;
          std::memcpy(&winner, won + o, sizeof winner);
          const IntLanes<B> at = widen<B>(winner);
          for (int64_t i = 0; i < k; ++i) {
            for (int64_t j = 0; j < k; ++j) {
              const auto here = at == int32_t(i * k + j);
              store<B>(window + (i * W + j) * B, here ? grad : V{});
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
