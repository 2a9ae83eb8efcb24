// Network: a contiguous range of a model's nodes set up for one batch size — the whole model on
// one rank, or one pipeline stage. It owns the flat parameter, gradient and state buffers and,
// per slot (one in-flight microbatch), every activation and gradient; it inserts layout
// conversions only where a producer and its consumer disagree, and sums gradients at forks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "layers/layer.hpp"
#include "layers/model_spec.hpp"

namespace baton::layers {

struct NetworkOptions {
  Backend backend = Backend::cpu;
  int64_t batch = 1;  // samples per microbatch; kernels are set up for exactly this many
  int slots = 1;      // microbatches that may be in flight at once
  uint64_t seed = 0;  // initial weights and dropout masks
};

// A contiguous range of this network's own nodes (0 is its first), e.g. one gradient bucket;
// end = -1 means to the last node.
struct NodeRange {
  int begin = 0;
  int end = -1;
};

// Where one node's parameters sit in the flat buffer.
struct ParamRange {
  int node;
  std::string node_name;
  int64_t offset;
  int64_t count;
};

// A parameter or state tensor of a network under PyTorch's name, "<node>.<tensor>"
// ("layer1.0.conv1.weight", "bn1.running_var"): a plain-layout range of the flat buffers.
struct NamedTensor {
  std::string name;
  Dims dims;
  int64_t offset;  // into weights() (and grads()), or into state() for state tensors
  bool state;
};

class Network {
 public:
  Network(const ModelSpec& model, int first, int last, const NetworkOptions& options);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  int first() const { return first_; }
  int last() const { return last_; }
  int64_t batch() const { return options_.batch; }
  int slots() const { return options_.slots; }

  // Boundary tensors, all plain: values produced before the range (kImages: the data) ...
  const std::vector<int>& entering() const { return entering_; }
  Tensor& input(int slot, size_t i);
  const Tensor& input_grad(int slot, size_t i) const;  // after backward_data (not for kImages)
  // ... and values produced here that later stages read.
  const std::vector<int>& leaving() const { return leaving_; }
  const Tensor& output(int slot, size_t i) const;
  Tensor& output_grad(int slot, size_t i);  // write before backward_data
  bool has_loss() const { return has_loss_; }
  int32_t* labels(int slot);

  // The passes, over all nodes or a sub-range (forward in order of ranges, backward in reverse).
  // `weights` is a whole version of this network's flat parameters; the schedule chooses which
  // version each pass sees. Weight gradients accumulate into `grads`.
  void forward(int slot, Phase phase, uint64_t microbatch, ParamsView weights, NodeRange nodes = {});
  void backward_data(int slot, ParamsView weights, float loss_scale, NodeRange nodes = {});
  void backward_weights(int slot, float* grads, NodeRange nodes = {});

  // Called after every node of every pass: a distributed run polls its MPI requests here, so
  // messages and averages move on while the layers compute.
  void set_progress_hook(std::function<void()> hook) { progress_hook_ = std::move(hook); }
  // While set, every layer pass adds its seconds to (*seconds)[model node index]; null stops it.
  void measure_nodes(std::vector<double>* seconds) { node_seconds_ = seconds; }
  // The parameters of a node range: [first, last) in the flat buffers.
  std::pair<int64_t, int64_t> param_range(NodeRange nodes) const;

  // Loss layer results of a slot, over its first `count` samples (the rest are padding).
  double loss_sum(int slot, int64_t count) const;
  int64_t correct(int slot, int64_t count) const;

  std::span<float> weights() { return {weights_.data(), size_t(param_count_)}; }
  std::span<float> grads() { return {grads_.data(), size_t(param_count_)}; }
  std::span<float> state() { return {state_.data(), size_t(state_count_)}; }
  ParamsView current_weights() const { return {weights_.data(), weights_version_}; }
  void weights_changed() { ++weights_version_; }  // call after writing weights()
  void zero_grads();

  // Model indices of the ReLU nodes whose work a neighbouring layer does (see Layer::absorb_relu).
  std::vector<int> absorbed_relus() const;

  int64_t param_count() const { return param_count_; }
  const std::vector<ParamRange>& param_ranges() const { return param_ranges_; }
  const std::vector<NamedTensor>& named_tensors() const { return named_tensors_; }  // in node order
  size_t activation_bytes() const { return activation_bytes_; }  // all slots

 private:
  struct Value;
  struct LocalNode;
  struct Slot;

  void build_values(const ModelSpec& model);
  std::vector<std::unique_ptr<Layer>> create_layers(const ModelSpec& model, std::vector<Absorbed>& absorbed) const;
  void setup_nodes(const ModelSpec& model);
  void init_buffers(const ModelSpec& model);
  void plan_gradients();
  void allocate_slot(Slot& slot);
  void bind_gradients(Slot& slot);
  void finish_gradient(Slot& slot, int value);
  std::vector<const Tensor*> node_inputs(Slot& slot, const LocalNode& node);
  int value_of_node(int local) const { return int(entering_.size()) + local; }
  NodeRange resolved(NodeRange nodes) const;
  template <class Pass>
  void timed(const LocalNode& node, Pass pass);
  const Tensor& loss_logits(int slot) const;

  int first_, last_;
  NetworkOptions options_;
  std::vector<int> entering_, leaving_;
  std::vector<Value> values_;
  std::vector<LocalNode> nodes_;
  std::vector<Slot> slots_;
  bool has_loss_ = false;
  Tensor weights_, grads_, state_;
  int64_t param_count_ = 0, state_count_ = 0;
  uint64_t weights_version_ = 1;
  std::vector<ParamRange> param_ranges_;
  std::vector<NamedTensor> named_tensors_;
  size_t activation_bytes_ = 0;
  std::function<void()> progress_hook_;
  std::vector<double>* node_seconds_ = nullptr;
};

}  // namespace baton::layers
