// The part every kernel family's layers share (reference loops, CUDA): output dims by shape
// inference, one layout of the family's for every input and the output, checked slots, and checked
// tensor arguments — each of the expected dims and where the family keeps its tensors.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "layers/layer.hpp"
#include "runtime/base/error.hpp"

namespace baton::layers {

class CheckedLayer : public Layer {
 public:
  explicit CheckedLayer(LayerSpec spec) : spec_(std::move(spec)) {}

  LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) final;

 protected:
  // The family: its name in messages, the spec it keeps a tensor of these dims in, and whether a
  // tensor is kept that way (for the check of every argument).
  virtual const char* family() const = 0;
  virtual TensorSpec spec_for(const Dims& dims) const = 0;
  virtual bool keeps(const TensorSpec& tensor) const = 0;
  // Refuses inputs the family cannot be handed (the network converts the others).
  virtual void check_given(const TensorSpec& input) const { (void)input; }
  // Descriptors, algorithms and per-slot state, once the dims and slots are known.
  virtual void prepare() {}

  int checked_slot(int slot) const;
  template <class Args>
  const float* input(const Args& args, size_t index) const {
    BATON_CHECK(index < args.inputs.size() && args.inputs[index] != nullptr, kind_name(spec_) << " is missing input " << index);
    return checked(*args.inputs[index], input_dims_[index], "input");
  }
  float* output(const ForwardArgs& args) const;
  const float* output(const BackwardArgs& args) const;
  const float* grad_output(const BackwardArgs& args) const;
  // Null where the caller does not need this input's gradient.
  float* grad_input(const BackwardArgs& args, size_t index) const;

  const Dims& in_dims() const { return input_dims_.at(0); }
  const Dims& out_dims() const { return output_dims_; }
  int64_t in_count() const { return element_count(in_dims()); }
  int64_t out_count() const { return element_count(output_dims_); }
  int slots() const { return slots_; }

  LayerSpec spec_;

 private:
  float* checked(const Tensor& tensor, const Dims& dims, const char* what) const;

  std::vector<Dims> input_dims_;
  Dims output_dims_;
  int slots_ = 0;
};

}  // namespace baton::layers
