// Shared pieces of the oneDNN CPU kernels: the engine and stream, the Layout that carries a
// oneDNN memory descriptor between layers, and conversions between TensorSpec, desc and memory.
// Only files in layers/cpu include oneDNN (its 2.x API differs from 3.x).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/base/error.hpp"
#include "runtime/base/tensor.hpp"

namespace baton::layers::cpu {

using dnnl::memory;
using Args = std::unordered_map<int, memory>;

dnnl::engine& engine();
dnnl::stream& stream();

// A blocked (non-plain) layout chosen by a oneDNN primitive.
class DnnlLayout final : public Layout {
 public:
  explicit DnnlLayout(memory::desc desc);
  std::string name() const override { return name_; }
  size_t bytes() const override { return desc_.get_size(); }
  bool same_as(const Layout& other) const override;
  const memory::desc& desc() const { return desc_; }

 private:
  memory::desc desc_;
  std::string name_;
};

memory::dims to_dnnl(const Dims& dims);
memory::desc plain_desc(const Dims& dims);
memory::desc any_desc(const Dims& dims);
memory::desc desc_of(const TensorSpec& spec);
// The spec for a primitive-chosen desc: plain layout when the desc is plain row-major.
TensorSpec spec_of(const Dims& dims, const memory::desc& desc);

memory wrap(const Tensor& tensor);
memory wrap(const memory::desc& desc, const void* data);

// Channel block size of nchw (1), nChw8c (8) or nChw16c (16); 0 for any other layout.
int channel_block(const TensorSpec& spec);
TensorSpec channel_blocked_spec(const Dims& dims, int block);  // block as channel_block() returns

void execute(const dnnl::primitive& primitive, const Args& args);

// ReLU primitives whose backward reads the forward's output (diff_src = diff_dst where dst > 0),
// so the input need not be kept. The forward may run in place.
dnnl::primitive relu_forward(const memory::desc& data);
dnnl::primitive relu_backward(const memory::desc& data);

// One buffer of `desc`'s size per slot (workspaces saved between a forward and its backward).
std::vector<Tensor> slot_buffers(const memory::desc& desc, int slots);

// dst = src, or dst += src when `accumulate`, across any two layouts of the same dims.
class Reorder {
 public:
  Reorder() = default;
  Reorder(const memory::desc& src, const memory::desc& dst, bool accumulate);
  void run(const void* src, void* dst) const;

 private:
  memory::desc src_;
  memory::desc dst_;
  dnnl::reorder primitive_;
};

// Hands a primitive an argument in the layout it wants when the tensor at hand has another:
// in() converts into a scratch copy; out() gives scratch to write and finish() converts it back.
// When the layouts agree both are free and return the caller's own pointer.
class LayoutAdapter {
 public:
  LayoutAdapter() = default;
  LayoutAdapter(const memory::desc& have, const memory::desc& want);
  bool identity() const { return identity_; }
  const void* in(const void* data);
  void* out(void* data);
  void finish(void* data) const;

 private:
  bool identity_ = true;
  Reorder to_wanted_, from_wanted_;
  Tensor scratch_;
};

// A parameter tensor in the layout one primitive wants, converted from the plain parameters
// at most once per parameter version.
class CachedParam {
 public:
  CachedParam() = default;
  CachedParam(const memory::desc& plain, const memory::desc& wanted) : adapter_(plain, wanted) {}
  const void* get(const float* plain_data, uint64_t version);

 private:
  LayoutAdapter adapter_;
  const void* converted_ = nullptr;
  const float* cached_data_ = nullptr;
  uint64_t cached_version_ = 0;
};

}  // namespace baton::layers::cpu
