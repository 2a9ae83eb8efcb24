// A model as data: nodes in topological order, each a LayerSpec and the nodes it reads
// (-1 is the input images). A pipeline stage is a contiguous range of nodes; tensors that a
// later node reads across a stage boundary (ResNet skips) simply travel with the activation.
#pragma once

#include <string>
#include <vector>

#include "layers/layer_spec.hpp"

namespace baton::layers {

constexpr int kImages = -1;

struct Node {
  std::string name;
  LayerSpec layer;
  std::vector<int> inputs;
};

struct ModelSpec {
  std::string name;
  Dims input;   // {C, H, W}
  int classes = 0;
  std::vector<Node> nodes;  // the last one is the loss
};

// Dims of each node's inputs and output for a batch of `batch` images.
struct ModelShapes {
  std::vector<std::vector<Dims>> inputs;
  std::vector<Dims> outputs;
};
// Throws one sentence naming the model, the node and what does not fit.
ModelShapes infer_shapes(const ModelSpec& model, int64_t batch);

int64_t count_params(const ModelSpec& model);

// A parameter or state tensor of the model under PyTorch's name, "<node>.<tensor>" (e.g.
// "layer1.0.conv1.weight", "bn1.running_var"): what checkpoints and exported weights are keyed by.
struct ModelTensor {
  std::string name;
  int node;
  ParamSpec spec;  // plain dims; spec.name is the tensor's own name ("weight", "running_var")
  bool state;      // batch-norm running statistics, not trained
};
// In node order; within a node its parameters, then its state (the flat buffers' order).
std::vector<ModelTensor> model_tensors(const ModelSpec& model);
// Training FLOPs per image: forward + backward data + backward weights of convs and linears
// (the first layer's data gradient is never computed and is not counted).
double training_flops_per_image(const ModelSpec& model);

// An estimate, made before anything is allocated, of the bytes nodes [first, last) take to train
// on microbatches of `batch` images with `slots` in flight: parameters in 6 copies (weights,
// gradient, momentum, average, reordered) plus `extra_weight_copies`, and per slot every node's output and its gradient, with
// channels padded as blocked layouts pad them. Measured peaks were 0.8–1.3 times it (LeNet-5 on
// 256x256 images, ResNet-20 b128, VGG-16 b64). A double, so that any size is estimated, not overflowed.
double training_bytes(const ModelSpec& model, int first, int last, int64_t batch, int slots,
                      int64_t extra_weight_copies = 0);

// Nodes in [first, last) whose outputs are read by nodes outside, in producer order.
std::vector<int> values_leaving(const ModelSpec& model, int first, int last);
// Values (node outputs, or kImages) read by nodes in [first, last) but produced before it.
std::vector<int> values_entering(const ModelSpec& model, int first, int last);

}  // namespace baton::layers
