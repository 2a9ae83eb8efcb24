// Google Benchmark of the measurements behind baton's kernel choices, at the thread count
// OMP_NUM_THREADS gives: this core's FMA peak, direct vs Winograd 3x3 convolutions per channel
// count, small-channel weight gradients per layout, and baton's tiled max pooling vs oneDNN's.
// Rates are reported as FLOPS / bytes counters.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <functional>

#include "layers/cpu/cpu_layers.hpp"
#include "runtime/base/rng.hpp"
#include "runtime/base/tensor.hpp"

namespace {

using dnnl::memory;
using tag = memory::format_tag;

// 24 independent chains of FMAs, enough to cover the FMA latency on two ports.
void FmaPeak(benchmark::State& state) {
#if defined(__AVX512F__)
  using Vec = __m512;
  constexpr int lanes = 16;
  auto set = [](float v) { return _mm512_set1_ps(v); };
  auto fma = [](Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); };
#else
  using Vec = __m256;
  constexpr int lanes = 8;
  auto set = [](float v) { return _mm256_set1_ps(v); };
  auto fma = [](Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); };
#endif
  constexpr int chains = 24, rounds = 4096;
  Vec acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = set(float(i));
  const Vec a = set(0.999f), b = set(0.001f);
  for (auto _ : state) {
    for (int r = 0; r < rounds; ++r) {
#pragma GCC unroll 24
      for (int i = 0; i < chains; ++i) acc[i] = fma(acc[i], a, b);
    }
    benchmark::DoNotOptimize(acc);
  }
  state.counters["FLOPS"] = benchmark::Counter(double(state.iterations()) * rounds * chains * lanes * 2,
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(FmaPeak)->Unit(benchmark::kMicrosecond);

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// One pass of a 3x3 stride-1 convolution at batch 128 and channels = image side inverse, as in
// ResNet-20's stages: state.range(0) channels, range(1) pass (0 fwd, 1 bwd data, 2 bwd weights),
// range(2) Winograd.
void Conv3x3(benchmark::State& state) {
  const int64_t c = state.range(0), side = 512 / c, n = 128;
  const auto alg = state.range(2) ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
  memory::dims image{n, c, side, side}, weights{c, c, 3, 3};
  auto any = [](const memory::dims& d) { return memory::desc(d, memory::data_type::f32, tag::any); };
  dnnl::convolution_forward::primitive_desc fwd(
      {dnnl::prop_kind::forward_training, alg, any(image), any(weights), any(image), {1, 1}, {1, 1}, {1, 1}}, engine());
  dnnl::primitive_desc pd = fwd;
  if (state.range(1) == 1)
    pd = dnnl::convolution_backward_data::primitive_desc(
        {alg, any(image), any(weights), any(image), {1, 1}, {1, 1}, {1, 1}}, engine(), fwd);
  if (state.range(1) == 2)
    pd = dnnl::convolution_backward_weights::primitive_desc(
        {alg, any(image), any(weights), any(image), {1, 1}, {1, 1}, {1, 1}}, engine(), fwd);
  std::unordered_map<int, memory> args;
  for (int arg : {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_WEIGHTS,
                  DNNL_ARG_DIFF_DST}) {
    memory::desc md = pd.query_md(dnnl::query::exec_arg_md, arg);
    if (md.get_size() > 0) args.emplace(arg, memory(md, engine()));
  }
  dnnl::primitive primitive(pd);
  dnnl::stream stream(engine());
  for (auto _ : state) {
    primitive.execute(stream, args);
    stream.wait();
  }
  state.counters["FLOPS"] = benchmark::Counter(double(state.iterations()) * 2.0 * n * c * side * side * c * 9,
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(Conv3x3)
    ->ArgsProduct({{16, 32, 64}, {0, 1, 2}, {0, 1}})
    ->ArgNames({"channels", "pass", "winograd"})
    ->Unit(benchmark::kMillisecond);

// The weight gradient of a 5x5 convolution to 16 channels on 64x14x14 images with range(0) input
// channels (LeNet-5's conv2 has 6), its src and diff_dst in the layouts oneDNN picks (range(1) = 0,
// hinted by the forward) or in nhwc (1): the choice behind conv2d's weight_grad_faster_in_nhwc.
void ConvWeightGradSmallChannels(benchmark::State& state) {
  const int64_t c = state.range(0), n = 64, oc = 16, side = 14, out = side - 4;
  memory::dims image{n, c, side, side}, weights{oc, c, 5, 5}, output{n, oc, out, out}, bias{oc};
  auto desc = [](const memory::dims& d, tag t) { return memory::desc(d, memory::data_type::f32, t); };
  const tag act = state.range(1) ? tag::nhwc : tag::any;
  const auto alg = dnnl::algorithm::convolution_direct;
  dnnl::convolution_forward::primitive_desc fwd({dnnl::prop_kind::forward_training, alg, desc(image, tag::any),
                                                 desc(weights, tag::any), desc(bias, tag::x), desc(output, tag::any),
                                                 {1, 1}, {0, 0}, {0, 0}},
                                                engine());
  dnnl::convolution_backward_weights::primitive_desc pd({alg, desc(image, act), desc(weights, tag::any),
                                                         desc(bias, tag::x), desc(output, act), {1, 1}, {0, 0}, {0, 0}},
                                                        engine(), fwd);
  std::unordered_map<int, memory> args;
  for (int arg : {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS})
    args.emplace(arg, memory(pd.query_md(dnnl::query::exec_arg_md, arg), engine()));
  dnnl::primitive primitive(pd);
  dnnl::stream stream(engine());
  for (auto _ : state) {
    primitive.execute(stream, args);
    stream.wait();
  }
  state.SetLabel(pd.impl_info_str());
  state.counters["FLOPS"] = benchmark::Counter(double(state.iterations()) * 2.0 * n * oc * out * out * c * 25,
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(ConvWeightGradSmallChannels)
    ->ArgsProduct({{3, 6, 12, 24}, {0, 1}})
    ->ArgNames({"in_channels", "nhwc"})
    ->Unit(benchmark::kMicrosecond);

// Max pooling 2x2/2, forward then backward, on LeNet-5's first pooling (64x6x28x28 in nChw16c)
// with random values, so each window's winner is as unpredictable as in training: range(0) = 1
// for baton's tiled kernel, 0 for oneDNN's primitives on the same layout.
void MaxPool2x2(benchmark::State& state) {
  using namespace baton;
  using namespace baton::layers;
  const TensorSpec in = cpu::channel_blocked_spec({64, 6, 28, 28}, 16);
  const TensorSpec out = cpu::channel_blocked_spec({64, 6, 14, 14}, 16);
  Tensor x(in), y(out), dy(out), dx(in);
  for (size_t i = 0; i < x.storage_floats(); ++i) x.data()[i] = uniform01(1, i) - 0.5f;
  for (size_t i = 0; i < dy.storage_floats(); ++i) dy.data()[i] = uniform01(2, i) - 0.5f;
  std::function<void()> step;
  std::unique_ptr<Layer> tiled;
  dnnl::stream stream(engine());
  dnnl::primitive forward, backward;
  std::unordered_map<int, memory> forward_args, backward_args;
  if (state.range(0)) {
    tiled = cpu::make_tiled_max_pool(MaxPoolSpec{2, 2});
    tiled->setup({in}, 1);
    step = [&] {
      const Tensor* inputs[] = {&x};
      Tensor* grads[] = {&dx};
      tiled->forward(ForwardArgs{inputs, &y, 0, Phase::train, {}, nullptr, 0, nullptr});
      tiled->backward_data(BackwardArgs{inputs, &y, &dy, grads, 0, {}, nullptr, 1.0f, nullptr});
    };
  } else {
    const memory::desc src = cpu::desc_of(in), dst = cpu::desc_of(out);
    dnnl::pooling_forward::primitive_desc fwd({dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, src, dst,
                                               {2, 2}, {2, 2}, {0, 0}, {0, 0}},
                                              engine());
    dnnl::pooling_backward::primitive_desc bwd({dnnl::algorithm::pooling_max, src, dst, {2, 2}, {2, 2}, {0, 0}, {0, 0}},
                                               engine(), fwd);
    memory workspace(fwd.workspace_desc(), engine());
    forward = dnnl::pooling_forward(fwd);
    backward = dnnl::pooling_backward(bwd);
    forward_args = {{DNNL_ARG_SRC, cpu::wrap(x)}, {DNNL_ARG_DST, cpu::wrap(y)}, {DNNL_ARG_WORKSPACE, workspace}};
    backward_args = {{DNNL_ARG_DIFF_DST, cpu::wrap(dy)}, {DNNL_ARG_DIFF_SRC, cpu::wrap(dx)}, {DNNL_ARG_WORKSPACE, workspace}};
    step = [&] {
      forward.execute(stream, forward_args);
      backward.execute(stream, backward_args);
      stream.wait();
    };
  }
  for (auto _ : state) step();
  state.counters["bytes"] = benchmark::Counter(double(state.iterations()) * 2.0 * double(in.bytes() + out.bytes()),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(MaxPool2x2)->Arg(0)->Arg(1)->ArgName("baton_tiled")->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
