// Implementation of CheckedLayer.
#include "layers/checked_layer.hpp"

#include "runtime/base/error.hpp"

namespace baton::layers {

LayerIO CheckedLayer::setup(const std::vector<TensorSpec>& inputs, int slots) {
  BATON_CHECK(slots >= 1, "a layer needs at least one slot but got " << slots);
  input_dims_.clear();
  for (const TensorSpec& input : inputs) {
    check_given(input);
    input_dims_.push_back(input.dims);
  }
  output_dims_ = infer_output_dims(spec_, input_dims_);
  slots_ = slots;
  prepare();
  LayerIO io;
  for (const Dims& dims : input_dims_) io.inputs.push_back(spec_for(dims));
  io.output = spec_for(output_dims_);
  if (std::holds_alternative<AddSpec>(spec_)) io.input_grads = InputGrads::output_grad;
  return io;
}

int CheckedLayer::checked_slot(int slot) const {
  BATON_CHECK(slot >= 0 && slot < slots_,
              kind_name(spec_) << " was set up for " << slots_ << " slot(s) but was asked for slot " << slot);
  return slot;
}

float* CheckedLayer::output(const ForwardArgs& args) const {
  BATON_CHECK(args.output != nullptr, kind_name(spec_) << " was given no output tensor");
  return checked(*args.output, output_dims_, "output");
}

const float* CheckedLayer::output(const BackwardArgs& args) const {
  BATON_CHECK(args.output != nullptr, kind_name(spec_) << " backward was given no forward output");
  return checked(*args.output, output_dims_, "output");
}

const float* CheckedLayer::grad_output(const BackwardArgs& args) const {
  BATON_CHECK(args.grad_output != nullptr, kind_name(spec_) << " backward was given no output gradient");
  return checked(*args.grad_output, output_dims_, "output gradient");
}

float* CheckedLayer::grad_input(const BackwardArgs& args, size_t index) const {
  if (index >= args.grad_inputs.size() || args.grad_inputs[index] == nullptr) return nullptr;
  return checked(*args.grad_inputs[index], input_dims_[index], "input gradient");
}

float* CheckedLayer::checked(const Tensor& tensor, const Dims& dims, const char* what) const {
  BATON_CHECK(keeps(tensor.spec()) && tensor.dims() == dims && !tensor.empty(),
              "the " << family() << " " << kind_name(spec_) << " layer expects a " << to_string(dims) << " " << what
                     << " laid out as " << spec_for(dims).layout_name() << " but got a "
                     << tensor.spec().layout_name() << " " << to_string(tensor.dims()));
  return const_cast<float*>(tensor.data());
}

}  // namespace baton::layers
