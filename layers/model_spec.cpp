// Shape inference, parameter and FLOP totals, and stage-boundary analysis of a ModelSpec.
#include "layers/model_spec.hpp"

#include <algorithm>
#include <set>

#include "runtime/base/error.hpp"

namespace baton::layers {

ModelShapes infer_shapes(const ModelSpec& model, int64_t batch) {
  ModelShapes shapes;
  Dims images{batch};
  images.insert(images.end(), model.input.begin(), model.input.end());
  for (size_t i = 0; i < model.nodes.size(); ++i) {
    const Node& node = model.nodes[i];
    std::vector<Dims> inputs;
    for (int source : node.inputs) {
      BATON_CHECK(source >= kImages && source < static_cast<int>(i),
                  "node '" << node.name << "' of model '" << model.name << "' reads node " << source
                           << ", which does not come before it");
      inputs.push_back(source == kImages ? images : shapes.outputs[source]);
    }
    try {
      shapes.outputs.push_back(infer_output_dims(node.layer, inputs));
    } catch (const Error& e) {
      throw e.with_context("model '" + model.name + "' does not fit " + to_string(model.input) + " images: at its layer '" +
                               node.name + "', ",
                           "");
    }
    shapes.inputs.push_back(std::move(inputs));
  }
  return shapes;
}

int64_t count_params(const ModelSpec& model) {
  ModelShapes shapes = infer_shapes(model, 1);
  int64_t total = 0;
  for (size_t i = 0; i < model.nodes.size(); ++i) total += param_count(model.nodes[i].layer, shapes.inputs[i]);
  return total;
}

std::vector<ModelTensor> model_tensors(const ModelSpec& model) {
  ModelShapes shapes = infer_shapes(model, 1);
  std::vector<ModelTensor> tensors;
  for (size_t i = 0; i < model.nodes.size(); ++i) {
    const Node& node = model.nodes[i];
    for (const ParamSpec& p : param_specs(node.layer, shapes.inputs[i]))
      tensors.push_back({node.name + "." + p.name, int(i), p, false});
    for (const ParamSpec& s : state_specs(node.layer, shapes.inputs[i]))
      tensors.push_back({node.name + "." + s.name, int(i), s, true});
  }
  return tensors;
}

double training_bytes(const ModelSpec& model, int first, int last, int64_t batch, int slots,
                      int64_t extra_weight_copies) {
  ModelShapes shapes = infer_shapes(model, 1);
  double params = 0, activations = 0;
  for (int i = first; i < last; ++i) {
    params += double(param_count(model.nodes[size_t(i)].layer, shapes.inputs[size_t(i)]));
    Dims out = shapes.outputs[size_t(i)];
    if (out.size() == 4) out[1] = (out[1] + 15) / 16 * 16;  // blocked layouts (nChw16c) pad channels to 16
    activations += double(element_count(out));
  }
  // Weights, gradient, momentum, average and the kernels' reordered copies; a value and its gradient.
  return double(sizeof(float)) *
         ((6 + double(extra_weight_copies)) * params + 2 * activations * double(batch) * double(slots));
}

double training_flops_per_image(const ModelSpec& model) {
  ModelShapes shapes = infer_shapes(model, 1);
  double total = 0;
  for (size_t i = 0; i < model.nodes.size(); ++i) {
    PassFlops flops = pass_flops(model.nodes[i].layer, shapes.inputs[i]);
    bool reads_images_only = std::all_of(model.nodes[i].inputs.begin(), model.nodes[i].inputs.end(),
                                         [](int source) { return source == kImages; });
    total += flops.forward + flops.backward_weights + (reads_images_only ? 0.0 : flops.backward_data);
  }
  return total;
}

std::vector<int> values_leaving(const ModelSpec& model, int first, int last) {
  std::set<int> leaving;
  for (int i = last; i < static_cast<int>(model.nodes.size()); ++i) {
    for (int source : model.nodes[i].inputs) {
      if (source >= first && source < last) leaving.insert(source);
    }
  }
  return {leaving.begin(), leaving.end()};
}

std::vector<int> values_entering(const ModelSpec& model, int first, int last) {
  std::set<int> entering;
  for (int i = first; i < last; ++i) {
    for (int source : model.nodes[i].inputs) {
      if (source < first) entering.insert(source);
    }
  }
  return {entering.begin(), entering.end()};
}

}  // namespace baton::layers
