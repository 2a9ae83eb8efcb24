// Implementation of dims helpers, TensorSpec and Tensor storage.
#include "runtime/base/tensor.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <sys/mman.h>

#include "runtime/base/device_memory.hpp"
#include "runtime/base/error.hpp"

namespace baton {

int64_t element_count(const Dims& dims) {
  int64_t count = 1;
  for (int64_t d : dims)
    BATON_CHECK(!__builtin_mul_overflow(count, d, &count),
                "a tensor of " << to_string(dims) << " elements has more than 2^63 of them");
  return count;
}

std::string to_string(const Dims& dims) {
  std::string text;
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? "x" : "") + std::to_string(dims[i]);
  return text;
}

size_t TensorSpec::bytes() const {
  return layout ? layout->bytes() : static_cast<size_t>(element_count(dims)) * sizeof(float);
}

std::string TensorSpec::layout_name() const { return layout ? layout->name() : "plain"; }

bool same_layout(const TensorSpec& a, const TensorSpec& b) {
  if (a.dims != b.dims) return false;
  if (a.plain() || b.plain()) return a.plain() == b.plain();
  return a.layout->same_as(*b.layout);
}

// Buffers of 2 MiB and more are 2 MiB aligned and marked for transparent huge pages: activations
// are walked in blocked layouts, and 4 KiB pages cost TLB misses on every tensor.
std::shared_ptr<float> allocate_floats(size_t count) {
  constexpr size_t huge_page = size_t(2) << 20;
  const size_t payload = std::max<size_t>(1, count) * sizeof(float);
  const size_t alignment = payload >= huge_page ? huge_page : 64;
  const size_t bytes = (payload + alignment - 1) / alignment * alignment;
  void* memory = std::aligned_alloc(alignment, bytes);
  BATON_CHECK(memory != nullptr, "out of memory allocating " << bytes << " bytes");
  if (alignment == huge_page) madvise(memory, bytes, MADV_HUGEPAGE);
  std::memset(memory, 0, bytes);
  return std::shared_ptr<float>(static_cast<float*>(memory), [](float* p) { std::free(p); });
}

Tensor::Tensor(TensorSpec spec) : spec_(std::move(spec)) {
  storage_ = spec_.on_device() ? device::allocate_floats(storage_floats()) : allocate_floats(storage_floats());
  data_ = storage_.get();
}

Tensor::Tensor(TensorSpec spec, float* borrowed_storage) : spec_(std::move(spec)), data_(borrowed_storage) {}

void Tensor::fill(float value) {
  if (spec_.on_device()) device::fill(data_, storage_floats(), value);
  else std::fill_n(data_, storage_floats(), value);
}

}  // namespace baton
