// Times the oneDNN kernels behind baton's conv layers (convolution forward/backward, batch norm) on one
// oneDNN build, so that bench/compare_onednn.sh can build it against Debian's 2.6 and a 3.x and compare.
// Usage: onednn_versions [rounds=20]; threads come from the environment. One JSON line per (case, pass).
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using dnnl::memory;

struct Case {
  const char* model;
  memory::dim n, c_in, h, w, c_out, kernel, stride, pad;
};

const Case kCases[] = {
    {"resnet20", 128, 16, 32, 32, 16, 3, 1, 1}, {"resnet20", 128, 32, 16, 16, 32, 3, 1, 1},
    {"resnet20", 128, 64, 8, 8, 64, 3, 1, 1},   {"resnet20", 128, 16, 32, 32, 32, 3, 2, 1},
    {"lenet5", 64, 1, 28, 28, 6, 5, 1, 2},      {"lenet5", 64, 6, 14, 14, 16, 5, 1, 0},
    {"vgg16", 64, 64, 32, 32, 64, 3, 1, 1},     {"vgg16", 64, 256, 8, 8, 256, 3, 1, 1},
};

// One timed primitive and the execution arguments it takes.
struct Pass {
  std::string name;
  dnnl::primitive primitive;
  dnnl::primitive_desc_base pd;
  std::vector<int> args;
};

// oneDNN 2.x builds a primitive descriptor from an operation descriptor; 3.x takes the engine and the
// operation's arguments directly, with the forward hint of a backward pass last.
template <class Op, class... A>
typename Op::primitive_desc forward_pd(const dnnl::engine& engine, const A&... a) {
#if DNNL_VERSION_MAJOR >= 3
  return typename Op::primitive_desc(engine, a...);
#else
  return typename Op::primitive_desc(typename Op::desc(a...), engine);
#endif
}

template <class Op, class Hint, class... A>
typename Op::primitive_desc backward_pd(const dnnl::engine& engine, const Hint& hint, const A&... a) {
#if DNNL_VERSION_MAJOR >= 3
  return typename Op::primitive_desc(engine, a..., hint);
#else
  return typename Op::primitive_desc(typename Op::desc(a...), engine, hint);
#endif
}

// Batch norm forward_training and backward with scale and shift over data laid out as md. 2.x names the
// data once and packs scale and shift into one tensor (use_scale_shift, as baton does); 3.x names src and
// dst and keeps scale and shift apart.
std::vector<Pass> batch_norm_passes(const dnnl::engine& engine, const memory::desc& md) {
  using dnnl::batch_normalization_backward, dnnl::batch_normalization_forward, dnnl::normalization_flags,
      dnnl::prop_kind;
  const float epsilon = 1e-5f;
  std::vector<int> fwd_args{DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
  std::vector<int> bwd_args{DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_DIFF_SRC};
#if DNNL_VERSION_MAJOR >= 3
  const auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
  const auto fwd = forward_pd<batch_normalization_forward>(engine, prop_kind::forward_training, md, md, epsilon, flags);
  const auto bwd =
      backward_pd<batch_normalization_backward>(engine, fwd, prop_kind::backward, md, md, md, epsilon, flags);
  fwd_args.insert(fwd_args.end(), {DNNL_ARG_SCALE, DNNL_ARG_SHIFT});
  bwd_args.insert(bwd_args.end(), {DNNL_ARG_SCALE, DNNL_ARG_DIFF_SCALE, DNNL_ARG_DIFF_SHIFT});
#else
  const auto flags = normalization_flags::use_scale_shift;
  const auto fwd = forward_pd<batch_normalization_forward>(engine, prop_kind::forward_training, md, epsilon, flags);
  const auto bwd = backward_pd<batch_normalization_backward>(engine, fwd, prop_kind::backward, md, md, epsilon, flags);
  fwd_args.push_back(DNNL_ARG_SCALE_SHIFT);
  bwd_args.insert(bwd_args.end(), {DNNL_ARG_SCALE_SHIFT, DNNL_ARG_DIFF_SCALE_SHIFT});
#endif
  return {{"bn_fwd", batch_normalization_forward(fwd), fwd, fwd_args},
          {"bn_bwd", batch_normalization_backward(bwd), bwd, bwd_args}};
}

// Memory for each of pass's arguments, in the layout its primitive chose, filled with a fixed pattern in
// [0.5, 1.5) (positive, so that a variance is valid). The padding of a blocked layout gets it too: its
// values are then meaningless, but the kernels do the same work.
std::unordered_map<int, memory> make_args(const Pass& pass, const dnnl::engine& engine) {
  std::unordered_map<int, memory> args;
  for (int arg : pass.args) {
    const memory::desc md = pass.pd.query_md(dnnl::query::exec_arg_md, arg);
    memory m(md, engine);
    auto* data = static_cast<float*>(m.get_data_handle());
    uint32_t state = 12345u + static_cast<uint32_t>(arg);
    for (size_t i = 0; i < md.get_size() / sizeof(float); ++i) {
      state = state * 1664525u + 1013904223u;
      data[i] = 0.5f + static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
    }
    args.emplace(arg, m);
  }
  return args;
}

// Median milliseconds of one execution over `rounds` timed executions, after 3 untimed ones.
double median_ms(const Pass& pass, dnnl::stream& stream, int rounds) {
  const auto args = make_args(pass, stream.get_engine());
  for (int i = 0; i < 3; ++i) {
    pass.primitive.execute(stream, args);
    stream.wait();
  }
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    const auto start = std::chrono::steady_clock::now();
    pass.primitive.execute(stream, args);
    stream.wait();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return (ms[(ms.size() - 1) / 2] + ms[ms.size() / 2]) / 2;
}

// Convolution forward_training, backward_data and backward_weights (with bias) with `algorithm`, then
// batch norm on the output of the direct one, each created as a training framework does:
// format_tag::any, so that oneDNN picks the layouts. Throws dnnl::error where a build lacks the algorithm.
std::vector<Pass> case_passes(const Case& c, const dnnl::engine& engine, dnnl::algorithm algorithm) {
  using dnnl::convolution_backward_data, dnnl::convolution_backward_weights, dnnl::convolution_forward;
  const auto any = [](const memory::dims& dims) {
    return memory::desc(dims, memory::data_type::f32, memory::format_tag::any);
  };
  const memory::dim out_h = (c.h + 2 * c.pad - c.kernel) / c.stride + 1;
  const memory::dim out_w = (c.w + 2 * c.pad - c.kernel) / c.stride + 1;
  const memory::desc src = any({c.n, c.c_in, c.h, c.w}), weights = any({c.c_out, c.c_in, c.kernel, c.kernel}),
                     dst = any({c.n, c.c_out, out_h, out_w});
  const memory::desc bias({c.c_out}, memory::data_type::f32, memory::format_tag::a);
  const memory::dims strides{c.stride, c.stride}, padding{c.pad, c.pad};
  const auto fwd = forward_pd<convolution_forward>(engine, dnnl::prop_kind::forward_training, algorithm, src, weights,
                                                   bias, dst, strides, padding, padding);
  const auto bwd_data =
      backward_pd<convolution_backward_data>(engine, fwd, algorithm, src, weights, dst, strides, padding, padding);
  const auto bwd_weights = backward_pd<convolution_backward_weights>(engine, fwd, algorithm, src, weights, bias, dst,
                                                                     strides, padding, padding);
  std::vector<Pass> passes{
      {"conv_fwd", convolution_forward(fwd), fwd, {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST}},
      {"conv_bwd_data", convolution_backward_data(bwd_data), bwd_data,
       {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC}},
      {"conv_bwd_weights", convolution_backward_weights(bwd_weights), bwd_weights,
       {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS}},
  };
  if (algorithm != dnnl::algorithm::convolution_direct) {
    for (Pass& pass : passes) pass.name += " (winograd)";
    return passes;
  }
  for (Pass& pass : batch_norm_passes(engine, fwd.dst_desc())) passes.push_back(std::move(pass));
  return passes;
}

void print_row(const std::string& version, const char* name, const std::string& pass, const std::string& median_ms,
               const std::string& impl) {
  std::printf("{\"onednn\": \"%s\", \"case\": \"%s\", \"pass\": \"%s\", \"median_ms\": %s, \"impl\": \"%s\"}\n",
              version.c_str(), name, pass.c_str(), median_ms.c_str(), impl.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
  if (argc > 2 || rounds < 1) {
    std::fprintf(stderr, "usage: %s [rounds >= 1, default 20]\n", argv[0]);
    return 2;
  }
  const dnnl_version_t* v = dnnl_version();
  const std::string version = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);

  for (const Case& c : kCases) {
    char name[96];
    std::snprintf(name, sizeof name, "%s %ldx%ldx%ldx%ld -> %ld k%lds%ldp%ld", c.model, long(c.n), long(c.c_in),
                  long(c.h), long(c.w), long(c.c_out), long(c.kernel), long(c.stride), long(c.pad));
    // baton runs 3x3 stride-1 convolutions of multiples of 16 channels on Winograd where it is faster.
    std::vector<dnnl::algorithm> algorithms{dnnl::algorithm::convolution_direct};
    if (c.kernel == 3 && c.stride == 1 && c.c_in % 16 == 0 && c.c_out % 16 == 0)
      algorithms.push_back(dnnl::algorithm::convolution_winograd);
    for (dnnl::algorithm algorithm : algorithms) {
      std::vector<Pass> passes;
      try {
        passes = case_passes(c, engine, algorithm);
      } catch (const dnnl::error&) {  // this build lacks the algorithm (3.x: Winograd)
        for (const char* pass : {"conv_fwd", "conv_bwd_data", "conv_bwd_weights"})
          print_row(version, name, std::string(pass) + " (winograd)", "null", "unimplemented");
      }
      for (const Pass& pass : passes)
        print_row(version, name, pass.name, std::to_string(median_ms(pass, stream, rounds)), pass.pd.impl_info_str());
    }
  }
  return 0;
}
