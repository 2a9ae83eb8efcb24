// The Layer interface every kernel family implements (cpu/ on oneDNN, cuda/ on cuDNN and cuBLAS,
// reference/ plain loops).
// setup() creates primitives once for a fixed batch and says which layouts the layer reads and
// writes; the three passes then replay them. A slot is one in-flight microbatch's saved state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <span>
#include <vector>

#include "layers/layer_spec.hpp"
#include "runtime/base/tensor.hpp"

namespace baton::layers {

enum class Phase { train, eval };

// One version of this layer's parameters, in the plain layouts of param_specs(), back to back.
// `version` changes whenever the values do, so kernels may cache reordered copies.
struct ParamsView {
  const float* data = nullptr;
  uint64_t version = 0;
};

// How a layer's input gradients relate, so the network can share buffers instead of copying.
enum class InputGrads {
  separate,     // backward_data writes each input's gradient
  output_grad,  // each input's gradient is the output's gradient: nothing to compute (residual add)
};

// What setup() decided: the layouts each input must arrive in (the network reorders a producer's
// output when it differs) and the output's. Gradients use the layout of the tensor they belong to.
struct LayerIO {
  std::vector<TensorSpec> inputs;
  TensorSpec output;
  InputGrads input_grads = InputGrads::separate;
};

struct ForwardArgs {
  std::span<const Tensor* const> inputs;
  Tensor* output;
  int slot;
  Phase phase;
  ParamsView params;
  float* state;            // running statistics this layer updates in training (batch norm), else null
  uint64_t random_key;     // unique to (run seed, node, microbatch): dropout masks are a pure function of it
  const int32_t* labels;   // class of each sample (loss layers only)
};

struct BackwardArgs {
  std::span<const Tensor* const> inputs;  // as in the forward of this slot
  const Tensor* output;
  const Tensor* grad_output;
  std::span<Tensor* const> grad_inputs;   // backward_data overwrites these; null entries are not needed
  int slot;
  ParamsView params;                      // the version this backward sees (the schedule chooses it)
  float* grads;                           // backward_weights accumulates into these (plain, like params)
  float loss_scale;                       // loss layers: gradient of loss_scale * sum of per-sample losses
  const int32_t* labels;
};

enum class ReluSide { after, before };
enum class Absorbed { no, both_passes, forward_only };

class Layer {
 public:
  virtual ~Layer() = default;

  // Asks the layer, before setup(), to apply a neighbouring ReLU as part of its own passes, so the
  // network can skip it. after: forward writes relu(output); with Absorbed::both_passes
  // backward_data receives the gradient of relu(output), with Absorbed::forward_only it receives
  // the gradient of the output (the network applies the ReLU's backward while it sums the
  // gradients reaching it). before: the input arrives before the ReLU, forward computes
  // layer(relu(input)) and backward_data returns the gradient of the un-rectified input.
  virtual Absorbed absorb_relu(ReluSide side) { (void)side; return Absorbed::no; }

  // Creates primitives and per-slot workspaces for inputs of these dims and layouts.
  virtual LayerIO setup(const std::vector<TensorSpec>& inputs, int slots) = 0;

  virtual void forward(const ForwardArgs& args) = 0;
  virtual void backward_data(const BackwardArgs& args) = 0;
  // Only layers with parameters do anything here.
  virtual void backward_weights(const BackwardArgs& args) { (void)args; }
};

enum class Backend { cpu, reference, cuda };
const char* backend_name(Backend backend);
Backend backend_named(const std::string& name);  // the inverse; an unknown name is an error naming the choices

std::unique_ptr<Layer> make_layer(const LayerSpec& spec, Backend backend);

// dst = src, or dst += src when accumulating, between two layouts of the same dims: the glue the
// network puts between a producer and a consumer that disagree, and where gradients meet.
class Conversion {
 public:
  virtual ~Conversion() = default;
  virtual void run(const Tensor& src, Tensor& dst) const = 0;
};
std::unique_ptr<Conversion> make_conversion(const TensorSpec& from, const TensorSpec& to, bool accumulate,
                                            Backend backend);

// dst = the sum of `terms` (dst's storage size each, dst's layout), zeroed wherever relu_output
// <= 0 when relu_output is given: gradients meeting at a fork, through a ReLU, in one pass. On
// the device when dst is.
void sum_gradients(std::span<const float* const> terms, const float* relu_output, Tensor& dst);

}  // namespace baton::layers
