// Tensors: logical dims, f32 storage (owned and 64-byte aligned, or borrowed) and a memory layout.
// A null layout means plain row-major host memory (NCHW for images, N×F for features); kernels
// may attach an opaque layout (oneDNN's nChw16c, a CUDA device's memory) handed on between layers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace baton {

using Dims = std::vector<int64_t>;

int64_t element_count(const Dims& dims);
std::string to_string(const Dims& dims);  // "128x3x32x32"

// A physical arrangement of a tensor's elements, defined by the kernels that produce it.
class Layout {
 public:
  virtual ~Layout() = default;
  virtual std::string name() const = 0;             // e.g. "nChw16c"
  virtual size_t bytes() const = 0;                 // storage size, padding included
  virtual bool same_as(const Layout& other) const = 0;
  virtual bool on_device() const { return false; }  // storage in GPU memory (runtime/base/device_memory)
};
using LayoutPtr = std::shared_ptr<const Layout>;

struct TensorSpec {
  Dims dims;
  LayoutPtr layout;  // nullptr: plain row-major

  bool plain() const { return layout == nullptr; }
  bool on_device() const { return layout && layout->on_device(); }
  size_t bytes() const;
  std::string layout_name() const;
};

bool same_layout(const TensorSpec& a, const TensorSpec& b);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(TensorSpec spec);                   // owned, zero-filled, where the layout lives
  Tensor(TensorSpec spec, float* borrowed_storage);   // a view; the owner outlives it

  const TensorSpec& spec() const { return spec_; }
  const Dims& dims() const { return spec_.dims; }
  int64_t numel() const { return element_count(spec_.dims); }
  size_t bytes() const { return spec_.bytes(); }
  size_t storage_floats() const { return bytes() / sizeof(float); }
  bool empty() const { return data_ == nullptr; }

  float* data() { return data_; }
  const float* data() const { return data_; }

  void fill(float value);

 private:
  TensorSpec spec_;
  std::shared_ptr<float> storage_;
  float* data_ = nullptr;
};

// 64-byte aligned, zero-filled float storage.
std::shared_ptr<float> allocate_floats(size_t count);

}  // namespace baton
