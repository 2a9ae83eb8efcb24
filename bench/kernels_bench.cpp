// Google Benchmark of the measurements behind baton's kernel choices, at the thread count
// OMP_NUM_THREADS gives: this core's FMA peak, direct vs Winograd 3x3 convolutions per channel
// count, and baton's tiled max pooling vs oneDNN's. Rates are reported as FLOPS / bytes counters.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <functional>

#include "layers/cpu/cpu_layers.hpp"
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

// Max pooling 2x2/2, forward then backward, on LeNet-5's first pooling (64x6x28x28 in nChw16c):
// range(0) = 1 for baton's tiled kernel, 0 for oneDNN's primitives on the same layout.
void MaxPool2x2(benchmark::State& state) {
  using namespace baton;
  using namespace baton::layers;
  const TensorSpec in = cpu::channel_blocked_spec({64, 6, 28, 28}, 16);
  const TensorSpec out = cpu::channel_blocked_spec({64, 6, 14, 14}, 16);
  Tensor x(in), y(out), dy(out), dx(in);
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
