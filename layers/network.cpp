// Implementation of Network: value/edge bookkeeping, per-slot buffers with gradient aliasing
// where a single plain hand-over suffices, and the three passes over the range's nodes.
#include "layers/network.hpp"

#include <algorithm>
#include <chrono>

#include "runtime/base/device_memory.hpp"
#include "runtime/base/error.hpp"
#include "runtime/base/rng.hpp"

namespace baton::layers {

// A tensor that nodes read: an entering boundary value or a local node's output.
struct Network::Value {
  int producer = kImages;  // model node index, or kImages
  TensorSpec spec;         // as stored: the producer's output layout; plain when it enters
  std::vector<std::pair<int, int>> consumers;  // (local node, input index)
  int leaving = -1;                            // index into leaving_, -1 if it stays
  bool needs_grad = false;
  // The gradient is the sum of these terms: consumers' input gradients and the incoming one.
  struct Term {
    int node = -1, input = -1;  // an edge gradient (node, input), or node == -1: incoming boundary gradient
    std::unique_ptr<Conversion> add;
  };
  std::vector<Term> grad_terms;
  bool grad_aliases_term = false;  // one term in the value's own layout: used in place
  bool terms_in_value_layout = false;  // all terms in the value's layout: summed in one pass
  // The value is the output of a ReLU that a layer applied in forward only: its gradient is
  // stored already through the ReLU's backward (zero where the value is not positive).
  bool relu_mask = false;
  std::unique_ptr<Conversion> to_plain;  // leaving values stored in a blocked layout
};

struct Network::LocalNode {
  int index = 0;
  std::string name;
  std::unique_ptr<Layer> layer;
  LayerIO io;
  std::vector<int> inputs;                              // value ids
  std::vector<std::unique_ptr<Conversion>> to_wanted;   // per input; null when layouts agree
  std::vector<bool> grad_is_output_grad;  // per input: its gradient is the output's, in place
  bool absorbed = false;  // a ReLU its producer or reader applies: no passes, output aliases its input
  int64_t param_offset = 0, param_count = 0, state_offset = 0, state_count = 0;
  uint64_t random_key = 0;
};

struct Network::Slot {
  std::vector<Tensor> values;                   // by value id
  std::vector<std::vector<Tensor>> staged;      // [node][input] converted to the wanted layout
  std::vector<Tensor> outputs;                  // leaving values, plain
  std::vector<Tensor> value_grads;              // by value id
  std::vector<std::vector<Tensor>> edge_grads;  // [node][input] in the node's input layout
  std::vector<Tensor> output_grads;             // incoming gradients of leaving values, plain
  std::vector<int32_t> labels;
};

namespace {
Dims with_batch(int64_t batch, const Dims& sample_dims) {
  Dims dims{batch};
  dims.insert(dims.end(), sample_dims.begin(), sample_dims.end());
  return dims;
}

// The tensor's values in plain row-major host memory: its own when it is stored so, else a copy
// made in `copy` (a GPU's loss, say).
const float* host_values(const Tensor& tensor, Backend backend, std::vector<float>& copy) {
  if (tensor.spec().plain()) return tensor.data();
  Tensor plain(TensorSpec{tensor.dims(), nullptr});
  make_conversion(tensor.spec(), plain.spec(), false, backend)->run(tensor, plain);
  copy.assign(plain.data(), plain.data() + plain.numel());
  return copy.data();
}
}  // namespace

Network::Network(const ModelSpec& model, int first, int last, const NetworkOptions& options)
    : first_(first), last_(last), options_(options) {
  BATON_CHECK(first >= 0 && first < last && last <= int(model.nodes.size()),
              "node range [" << first << ", " << last << ") is not inside model '" << model.name << "' with "
                             << model.nodes.size() << " nodes");
  BATON_CHECK(options.batch >= 1 && options.slots >= 1, "a network needs a batch and at least one slot");
  has_loss_ = last == int(model.nodes.size());
  build_values(model);
  setup_nodes(model);
  init_buffers(model);
  plan_gradients();
  slots_.resize(options.slots);
  for (Slot& slot : slots_) {
    allocate_slot(slot);
    bind_gradients(slot);
  }
}

Network::~Network() = default;

void Network::build_values(const ModelSpec& model) {
  entering_ = values_entering(model, first_, last_);
  leaving_ = values_leaving(model, first_, last_);
  ModelShapes shapes = infer_shapes(model, options_.batch);
  for (int producer : entering_) {
    Value value;
    value.producer = producer;
    value.spec = TensorSpec{producer == kImages ? with_batch(options_.batch, model.input) : shapes.outputs[producer], nullptr};
    value.needs_grad = producer != kImages;
    values_.push_back(std::move(value));
  }
  for (int i = first_; i < last_; ++i) {
    Value value;
    value.producer = i;
    value.needs_grad = true;
    auto it = std::find(leaving_.begin(), leaving_.end(), i);
    if (it != leaving_.end()) value.leaving = int(it - leaving_.begin());
    values_.push_back(std::move(value));
  }
}

namespace {
int readers_of(const ModelSpec& model, int i) {
  int readers = 0;
  for (const Node& node : model.nodes) readers += int(std::count(node.inputs.begin(), node.inputs.end(), i));
  return readers;
}
}  // namespace

// Creates every node's layer and lets neighbours apply ReLUs themselves where kernels can: a layer
// whose only reader is a ReLU may apply it after its output (batch norm, residual add), and a layer
// whose only input is a ReLU read by nothing else may apply it before (max pooling). Absorbed ReLU
// nodes get no layer.
std::vector<std::unique_ptr<Layer>> Network::create_layers(const ModelSpec& model, std::vector<Absorbed>& absorbed) const {
  std::vector<std::unique_ptr<Layer>> layers;
  for (int i = first_; i < last_; ++i) layers.push_back(make_layer(model.nodes[i].layer, options_.backend));
  absorbed.assign(layers.size(), Absorbed::no);
  for (int i = first_; i < last_; ++i) {
    const Node& relu = model.nodes[i];
    if (!std::holds_alternative<ReluSpec>(relu.layer)) continue;
    const int producer = relu.inputs[0], reader = i + 1;
    Absorbed& how = absorbed[i - first_];
    if (producer >= first_ && absorbed[producer - first_] == Absorbed::no && readers_of(model, producer) == 1)
      how = layers[producer - first_]->absorb_relu(ReluSide::after);
    if (how == Absorbed::no && reader < last_ && readers_of(model, i) == 1 &&
        model.nodes[reader].inputs == std::vector<int>{i})
      how = layers[reader - first_]->absorb_relu(ReluSide::before);
    if (how != Absorbed::no) layers[i - first_].reset();
  }
  return layers;
}

void Network::setup_nodes(const ModelSpec& model) {
  ModelShapes shapes = infer_shapes(model, options_.batch);
  std::vector<Absorbed> absorbed;
  std::vector<std::unique_ptr<Layer>> layers = create_layers(model, absorbed);
  for (int i = first_; i < last_; ++i) {
    const Node& spec = model.nodes[i];
    LocalNode node;
    node.index = i;
    node.name = spec.name;
    node.absorbed = absorbed[i - first_] != Absorbed::no;
    values_[value_of_node(int(nodes_.size()))].relu_mask = absorbed[i - first_] == Absorbed::forward_only;
    node.layer = std::move(layers[i - first_]);
    std::vector<TensorSpec> given;
    for (size_t k = 0; k < spec.inputs.size(); ++k) {
      int source = spec.inputs[k];
      int value = source >= first_ ? value_of_node(source - first_)
                                   : int(std::find(entering_.begin(), entering_.end(), source) - entering_.begin());
      node.inputs.push_back(value);
      values_[value].consumers.emplace_back(int(nodes_.size()), int(k));
      given.push_back(values_[value].spec);
    }
    node.io = node.absorbed ? LayerIO{given, given[0], InputGrads::output_grad} : node.layer->setup(given, options_.slots);
    for (size_t k = 0; k < given.size(); ++k) {
      node.to_wanted.push_back(same_layout(given[k], node.io.inputs[k])
                                   ? nullptr
                                   : make_conversion(given[k], node.io.inputs[k], false, options_.backend));
    }
    node.param_offset = param_count_;
    node.param_count = layers::param_count(spec.layer, shapes.inputs[i]);
    node.state_offset = state_count_;
    node.state_count = state_count(spec.layer, shapes.inputs[i]);
    param_count_ += node.param_count;
    state_count_ += node.state_count;
    if (node.param_count > 0) param_ranges_.push_back({i, node.name, node.param_offset, node.param_count});
    node.random_key = mix_keys(options_.seed, uint64_t(i));
    Value& out = values_[value_of_node(int(nodes_.size()))];
    out.spec = node.io.output;
    if (out.leaving >= 0 && !out.spec.plain())
      out.to_plain = make_conversion(out.spec, TensorSpec{out.spec.dims, nullptr}, false, options_.backend);
    nodes_.push_back(std::move(node));
  }
}

void Network::init_buffers(const ModelSpec& model) {
  weights_ = Tensor(TensorSpec{{std::max<int64_t>(param_count_, 1)}, nullptr});
  grads_ = Tensor(TensorSpec{{std::max<int64_t>(param_count_, 1)}, nullptr});
  state_ = Tensor(TensorSpec{{std::max<int64_t>(state_count_, 1)}, nullptr});
  int64_t param_offset = 0, state_offset = 0;
  int node = -1, param_in_node = 0;
  for (const ModelTensor& t : model_tensors(model)) {
    if (t.node < first_ || t.node >= last_) continue;
    param_in_node = t.node == node ? param_in_node : 0;
    node = t.node;
    int64_t& offset = t.state ? state_offset : param_offset;
    float* values = (t.state ? state_ : weights_).data() + offset;
    init_param(t.spec, t.state ? 0 : mix_keys(options_.seed, uint64_t(t.node) * 64 + uint64_t(param_in_node++)), values);
    named_tensors_.push_back({t.name, t.spec.dims, offset, t.state});
    offset += element_count(t.spec.dims);
  }
}

void Network::allocate_slot(Slot& slot) {
  auto own = [&](const TensorSpec& spec) {
    activation_bytes_ += spec.bytes();
    return Tensor(spec);
  };
  for (const Value& value : values_) {
    const LocalNode* node = value.producer >= first_ ? &nodes_[value.producer - first_] : nullptr;
    slot.values.push_back(node && node->absorbed ? Tensor(value.spec, slot.values[node->inputs[0]].data())
                                                 : own(value.spec));
  }
  for (const LocalNode& node : nodes_) {
    std::vector<Tensor> staged;
    for (size_t k = 0; k < node.inputs.size(); ++k)
      staged.push_back(node.to_wanted[k] ? own(node.io.inputs[k]) : Tensor());
    slot.staged.push_back(std::move(staged));
  }
  slot.outputs.resize(leaving_.size());
  slot.output_grads.resize(leaving_.size());
  for (const Value& value : values_) {
    if (value.leaving < 0) continue;
    TensorSpec plain{value.spec.dims, nullptr};
    const Tensor& stored = slot.values[&value - values_.data()];
    slot.outputs[value.leaving] = value.to_plain ? own(plain) : Tensor(plain, const_cast<float*>(stored.data()));
    slot.output_grads[value.leaving] = own(plain);
  }
  if (has_loss_) slot.labels.assign(size_t(options_.batch), 0);
}

// Decides once, per value, which terms its gradient sums and whether a single term in the
// value's own layout can be used in place; and, per edge, whether it is the output's gradient.
void Network::plan_gradients() {
  auto term_spec = [&](const Value& value, const Value::Term& t) {
    return t.node < 0 ? TensorSpec{value.spec.dims, nullptr} : nodes_[t.node].io.inputs[t.input];
  };
  for (Value& value : values_) {
    if (!value.needs_grad) continue;
    for (auto [node, input] : value.consumers) value.grad_terms.push_back({node, input, nullptr});
    if (value.leaving >= 0) value.grad_terms.push_back({-1, -1, nullptr});
    if (value.grad_terms.empty()) continue;  // nothing reads it (the loss)
    value.terms_in_value_layout = std::all_of(value.grad_terms.begin(), value.grad_terms.end(), [&](const Value::Term& t) {
      return same_layout(term_spec(value, t), value.spec);
    });
    value.grad_aliases_term = value.grad_terms.size() == 1 && value.terms_in_value_layout && !value.relu_mask;
    if (value.terms_in_value_layout) continue;
    for (size_t k = 0; k < value.grad_terms.size(); ++k)
      value.grad_terms[k].add = make_conversion(term_spec(value, value.grad_terms[k]), value.spec, k > 0, options_.backend);
  }
  for (size_t n = 0; n < nodes_.size(); ++n) {
    LocalNode& node = nodes_[n];
    const bool output_has_grad = !values_[value_of_node(int(n))].grad_terms.empty();
    for (const TensorSpec& input : node.io.inputs)
      node.grad_is_output_grad.push_back(node.io.input_grads == InputGrads::output_grad && output_has_grad &&
                                         same_layout(input, node.io.output));
  }
}

// Gives a slot its gradient buffers, walking backwards so that every buffer used in place is
// settled before another tensor views it.
void Network::bind_gradients(Slot& slot) {
  slot.value_grads.resize(values_.size());
  slot.edge_grads.resize(nodes_.size());
  auto bind_value = [&](int id) {
    const Value& value = values_[id];
    if (value.grad_terms.empty()) return;
    if (!value.grad_aliases_term) {
      slot.value_grads[id] = Tensor(value.spec);
      activation_bytes_ += value.spec.bytes();
      return;
    }
    const Value::Term& only = value.grad_terms[0];
    Tensor& term = only.node < 0 ? slot.output_grads[value.leaving] : slot.edge_grads[only.node][only.input];
    slot.value_grads[id] = Tensor(value.spec, term.data());
  };
  for (int n = int(nodes_.size()) - 1; n >= 0; --n) {
    bind_value(value_of_node(n));
    const LocalNode& node = nodes_[n];
    std::vector<Tensor>& edges = slot.edge_grads[n];
    edges.resize(node.inputs.size());
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      if (!values_[node.inputs[k]].needs_grad) continue;
      if (node.grad_is_output_grad[k]) {
        edges[k] = Tensor(node.io.inputs[k], slot.value_grads[value_of_node(n)].data());
      } else {
        edges[k] = Tensor(node.io.inputs[k]);
        activation_bytes_ += node.io.inputs[k].bytes();
      }
    }
  }
  for (size_t e = 0; e < entering_.size(); ++e) bind_value(int(e));
}

Tensor& Network::input(int slot, size_t i) { return slots_.at(slot).values.at(i); }
const Tensor& Network::input_grad(int slot, size_t i) const { return slots_.at(slot).value_grads.at(i); }
const Tensor& Network::output(int slot, size_t i) const { return slots_.at(slot).outputs.at(i); }
Tensor& Network::output_grad(int slot, size_t i) { return slots_.at(slot).output_grads.at(i); }
int32_t* Network::labels(int slot) {
  BATON_CHECK(has_loss_, "only the stage that ends in the loss takes labels");
  return slots_.at(slot).labels.data();
}

std::vector<const Tensor*> Network::node_inputs(Slot& slot, const LocalNode& node) {
  std::vector<const Tensor*> inputs;
  size_t n = &node - nodes_.data();
  for (size_t k = 0; k < node.inputs.size(); ++k)
    inputs.push_back(node.to_wanted[k] ? &slot.staged[n][k] : &slot.values[node.inputs[k]]);
  return inputs;
}

// Runs one layer pass, adds its time to the node's when measuring, then lets communication move.
template <class Pass>
void Network::timed(const LocalNode& node, Pass pass) {
  if (node_seconds_ == nullptr) {
    pass();
  } else {
    if (options_.backend == Backend::cuda) device::synchronize();  // time this layer's kernels only
    auto start = std::chrono::steady_clock::now();
    pass();
    if (options_.backend == Backend::cuda) device::synchronize();
    (*node_seconds_)[size_t(node.index)] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  if (progress_hook_) progress_hook_();
}

NodeRange Network::resolved(NodeRange nodes) const {
  if (nodes.end < 0) nodes.end = int(nodes_.size());
  BATON_CHECK(nodes.begin >= 0 && nodes.begin < nodes.end && nodes.end <= int(nodes_.size()),
              "node range [" << nodes.begin << ", " << nodes.end << ") is not inside a network of " << nodes_.size()
                             << " nodes");
  return nodes;
}

std::pair<int64_t, int64_t> Network::param_range(NodeRange nodes) const {
  nodes = resolved(nodes);
  auto offset = [&](int n) { return n < int(nodes_.size()) ? nodes_[size_t(n)].param_offset : param_count_; };
  return {offset(nodes.begin), offset(nodes.end)};
}

void Network::forward(int slot_index, Phase phase, uint64_t microbatch, ParamsView weights, NodeRange range) {
  Slot& slot = slots_.at(slot_index);
  range = resolved(range);
  for (size_t n = size_t(range.begin); n < size_t(range.end); ++n) {
    LocalNode& node = nodes_[n];
    if (node.absorbed) continue;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      if (node.to_wanted[k]) node.to_wanted[k]->run(slot.values[node.inputs[k]], slot.staged[n][k]);
    }
    std::vector<const Tensor*> inputs = node_inputs(slot, node);
    ForwardArgs args{inputs,
                     &slot.values[value_of_node(int(n))],
                     slot_index,
                     phase,
                     ParamsView{weights.data + node.param_offset, weights.version},
                     node.state_count ? state_.data() + node.state_offset : nullptr,
                     mix_keys(node.random_key, microbatch),
                     slot.labels.data()};
    timed(node, [&] { node.layer->forward(args); });
  }
  for (const Value& value : values_) {
    const bool produced_here = value.producer >= first_ + range.begin && value.producer < first_ + range.end;
    if (value.to_plain && produced_here)
      value.to_plain->run(slot.values[&value - values_.data()], slot.outputs[value.leaving]);
  }
}

void Network::finish_gradient(Slot& slot, int id) {
  const Value& value = values_[id];
  if (value.grad_aliases_term) return;
  Tensor& grad = slot.value_grads[id];
  const float* relu_output = value.relu_mask ? slot.values[id].data() : nullptr;
  std::vector<const float*> terms;
  for (const Value::Term& term : value.grad_terms) {
    const Tensor& t = term.node < 0 ? slot.output_grads[value.leaving] : slot.edge_grads[term.node][term.input];
    if (!value.terms_in_value_layout) term.add->run(t, grad);
    terms.push_back(t.data());
  }
  if (!value.terms_in_value_layout) terms.assign(1, grad.data());  // converted and summed already
  if (value.terms_in_value_layout || relu_output) sum_gradients(terms, relu_output, grad);
}

void Network::backward_data(int slot_index, ParamsView weights, float loss_scale, NodeRange range) {
  Slot& slot = slots_.at(slot_index);
  range = resolved(range);
  for (int n = range.end - 1; n >= range.begin; --n) {
    LocalNode& node = nodes_[n];
    int value = value_of_node(n);
    finish_gradient(slot, value);
    if (std::all_of(node.grad_is_output_grad.begin(), node.grad_is_output_grad.end(), [](bool b) { return b; }))
      continue;  // an identity gradient already in place (residual add, absorbed ReLU)
    std::vector<Tensor*> grads;
    for (Tensor& edge : slot.edge_grads[n]) grads.push_back(edge.empty() ? nullptr : &edge);
    std::vector<const Tensor*> inputs = node_inputs(slot, node);
    const Tensor& grad_output = slot.value_grads[value];
    BackwardArgs args{inputs,    &slot.values[value], grad_output.empty() ? nullptr : &grad_output,
                      grads,     slot_index,          ParamsView{weights.data + node.param_offset, weights.version},
                      nullptr,   loss_scale,          slot.labels.data()};
    timed(node, [&] { node.layer->backward_data(args); });
  }
  if (range.begin > 0) return;  // the gradients leaving the network are complete with the first node
  for (size_t e = 0; e < entering_.size(); ++e) {
    if (values_[e].needs_grad) finish_gradient(slot, int(e));
  }
}

void Network::backward_weights(int slot_index, float* grads, NodeRange range) {
  Slot& slot = slots_.at(slot_index);
  range = resolved(range);
  for (int n = range.end - 1; n >= range.begin; --n) {
    LocalNode& node = nodes_[n];
    if (node.param_count == 0) continue;
    std::vector<const Tensor*> inputs = node_inputs(slot, node);
    int value = value_of_node(n);
    BackwardArgs args{inputs,  &slot.values[value], &slot.value_grads[value], {}, slot_index, ParamsView{},
                      grads + node.param_offset, 0.0f, slot.labels.data()};
    timed(node, [&] { node.layer->backward_weights(args); });
  }
}

const Tensor& Network::loss_logits(int slot) const {
  BATON_CHECK(has_loss_, "this stage does not end in the loss, so it has no loss or accuracy to report");
  const LocalNode& loss = nodes_.back();
  size_t n = nodes_.size() - 1;
  const Slot& s = slots_.at(slot);
  return loss.to_wanted[0] ? s.staged[n][0] : s.values[loss.inputs[0]];
}

double Network::loss_sum(int slot, int64_t count) const {
  loss_logits(slot);
  std::vector<float> copy;
  const float* losses = host_values(slots_.at(slot).values[value_of_node(int(nodes_.size()) - 1)], options_.backend, copy);
  double sum = 0;
  for (int64_t i = 0; i < count; ++i) sum += losses[i];
  return sum;
}

int64_t Network::correct(int slot, int64_t count) const {
  const Tensor& logits_tensor = loss_logits(slot);
  std::vector<float> copy;
  const float* logits = host_values(logits_tensor, options_.backend, copy);
  const int64_t classes = logits_tensor.dims()[1];
  const int32_t* labels = slots_.at(slot).labels.data();
  int64_t hits = 0;
  for (int64_t i = 0; i < count; ++i) {
    const float* row = logits + i * classes;
    hits += (std::max_element(row, row + classes) - row) == labels[i];
  }
  return hits;
}

void Network::zero_grads() { grads_.fill(0.0f); }

std::vector<int> Network::absorbed_relus() const {
  std::vector<int> indices;
  for (const LocalNode& node : nodes_)
    if (node.absorbed) indices.push_back(node.index);
  return indices;
}

}  // namespace baton::layers
