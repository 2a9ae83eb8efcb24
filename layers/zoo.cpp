// Definitions of the zoo networks as ModelSpec graphs.
#include "layers/zoo.hpp"

#include <functional>

#include "runtime/base/error.hpp"

namespace baton::layers {
namespace {

// Appends nodes to a ModelSpec; each add() returns the new node's index.
class Builder {
 public:
  Builder(std::string name, const Dims& input, int classes) {
    model_.name = std::move(name);
    model_.input = input;
    model_.classes = classes;
  }

  int add(const std::string& name, LayerSpec layer, std::vector<int> inputs) {
    model_.nodes.push_back({name, std::move(layer), std::move(inputs)});
    return int(model_.nodes.size()) - 1;
  }
  int add(const std::string& name, LayerSpec layer) { return add(name, std::move(layer), {last()}); }
  int last() const { return model_.nodes.empty() ? kImages : int(model_.nodes.size()) - 1; }

  // Nodes <prefix>conv<k>, <prefix>bn<k>, <prefix>relu<k>: PyTorch's names for these modules, so
  // that checkpoints and the twins in bench/pytorch_models.py share parameter names.
  int conv_bn_relu(const std::string& prefix, int k, int64_t channels, int64_t kernel, int64_t stride,
                   bool bias = false) {
    const std::string index = std::to_string(k);
    add(prefix + "conv" + index, Conv2dSpec{channels, kernel, stride, kernel / 2, bias});
    add(prefix + "bn" + index, BatchNormSpec{});
    return add(prefix + "relu" + index, ReluSpec{});
  }

  ModelSpec finish() {
    add("loss", SoftmaxCrossEntropySpec{});
    return std::move(model_);
  }

 private:
  ModelSpec model_;
};

ModelSpec lenet5(const Dims& input, int classes) {
  Builder b("lenet5", input, classes);
  b.add("conv1", Conv2dSpec{6, 5, 1, input[1] == 28 ? 2 : 0});  // 28x28 is padded to LeNet's 32x32
  b.add("relu1", ReluSpec{});
  b.add("pool1", MaxPoolSpec{2, 2});
  b.add("conv2", Conv2dSpec{16, 5});
  b.add("relu2", ReluSpec{});
  b.add("pool2", MaxPoolSpec{2, 2});
  b.add("flatten", FlattenSpec{});
  b.add("fc1", LinearSpec{120});
  b.add("relu3", ReluSpec{});
  b.add("fc2", LinearSpec{84});
  b.add("relu4", ReluSpec{});
  b.add("fc3", LinearSpec{classes});
  return b.finish();
}

ModelSpec alexnet(const Dims& input, int classes) {
  Builder b("alexnet", input, classes);
  b.add("conv1", Conv2dSpec{64, 5, 1, 2});
  b.add("relu1", ReluSpec{});
  b.add("pool1", MaxPoolSpec{3, 2});
  b.add("lrn1", LrnSpec{});
  b.add("conv2", Conv2dSpec{192, 5, 1, 2});
  b.add("relu2", ReluSpec{});
  b.add("lrn2", LrnSpec{});
  b.add("pool2", MaxPoolSpec{3, 2});
  b.add("conv3", Conv2dSpec{384, 3, 1, 1});
  b.add("relu3", ReluSpec{});
  b.add("conv4", Conv2dSpec{256, 3, 1, 1});
  b.add("relu4", ReluSpec{});
  b.add("conv5", Conv2dSpec{256, 3, 1, 1});
  b.add("relu5", ReluSpec{});
  b.add("pool5", MaxPoolSpec{3, 2});
  b.add("flatten", FlattenSpec{});
  b.add("drop6", DropoutSpec{0.5f});
  b.add("fc6", LinearSpec{4096});
  b.add("relu6", ReluSpec{});
  b.add("drop7", DropoutSpec{0.5f});
  b.add("fc7", LinearSpec{4096});
  b.add("relu7", ReluSpec{});
  b.add("fc8", LinearSpec{classes});
  return b.finish();
}

// CIFAR VGG with batch norm: 3x3 convs (with bias) + BN + ReLU, 2x2 max pools ('M'), one linear.
ModelSpec vgg(const std::string& name, const std::vector<int>& config, const Dims& input, int classes) {
  Builder b(name, input, classes);
  int conv = 0, pool = 0;
  for (int channels : config) {
    if (channels == 0) b.add("pool" + std::to_string(++pool), MaxPoolSpec{2, 2});
    else b.conv_bn_relu("", ++conv, channels, 3, 1, true);
  }
  b.add("flatten", FlattenSpec{});
  b.add("fc", LinearSpec{classes});
  return b.finish();
}

// He et al.'s CIFAR ResNet-(6n+2): three stages of n basic blocks (16, 32, 64 channels).
ModelSpec cifar_resnet(int depth, const Dims& input, int classes) {
  const int blocks = (depth - 2) / 6;
  Builder b("resnet" + std::to_string(depth), input, classes);
  b.conv_bn_relu("", 1, 16, 3, 1);
  int64_t channels = 16;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t planes = 16 << stage;
    for (int block = 0; block < blocks; ++block) {
      const std::string name = "layer" + std::to_string(stage + 1) + "." + std::to_string(block);
      const int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
      const int entry = b.last();
      b.conv_bn_relu(name + ".", 1, planes, 3, stride);
      b.add(name + ".conv2", Conv2dSpec{planes, 3, 1, 1, false});
      const int branch = b.add(name + ".bn2", BatchNormSpec{});
      const int shortcut =
          (stride != 1 || channels != planes) ? b.add(name + ".shortcut", ShortcutPadSpec{planes, stride}, {entry}) : entry;
      b.add(name + ".add", AddSpec{}, {branch, shortcut});
      b.add(name + ".relu", ReluSpec{});
      channels = planes;
    }
  }
  b.add("avgpool", GlobalAvgPoolSpec{});
  b.add("fc", LinearSpec{classes});
  return b.finish();
}

// torchvision-style ImageNet ResNets: basic blocks (18) or bottlenecks (50), projection shortcuts.
ModelSpec imagenet_resnet(int depth, const Dims& input, int classes) {
  const bool bottleneck = depth >= 50;
  const std::vector<int> blocks = bottleneck ? std::vector<int>{3, 4, 6, 3} : std::vector<int>{2, 2, 2, 2};
  const int64_t expansion = bottleneck ? 4 : 1;
  Builder b("resnet" + std::to_string(depth), input, classes);
  b.add("conv1", Conv2dSpec{64, 7, 2, 3, false});
  b.add("bn1", BatchNormSpec{});
  b.add("relu1", ReluSpec{});
  b.add("maxpool", MaxPoolSpec{3, 2, 1});
  int64_t channels = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t planes = 64 << stage;
    for (int block = 0; block < blocks[stage]; ++block) {
      const std::string name = "layer" + std::to_string(stage + 1) + "." + std::to_string(block);
      const int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
      const int entry = b.last();
      if (bottleneck) {
        b.conv_bn_relu(name + ".", 1, planes, 1, 1);
        b.conv_bn_relu(name + ".", 2, planes, 3, stride);
      } else {
        b.conv_bn_relu(name + ".", 1, planes, 3, stride);
      }
      const std::string last = bottleneck ? "3" : "2";
      b.add(name + ".conv" + last, Conv2dSpec{planes * expansion, bottleneck ? 1 : 3, 1, bottleneck ? 0 : 1, false});
      const int branch = b.add(name + ".bn" + last, BatchNormSpec{});
      int shortcut = entry;
      if (stride != 1 || channels != planes * expansion) {
        b.add(name + ".downsample.0", Conv2dSpec{planes * expansion, 1, stride, 0, false}, {entry});
        shortcut = b.add(name + ".downsample.1", BatchNormSpec{});
      }
      b.add(name + ".add", AddSpec{}, {branch, shortcut});
      b.add(name + ".relu", ReluSpec{});
      channels = planes * expansion;
    }
  }
  b.add("avgpool", GlobalAvgPoolSpec{});
  b.add("fc", LinearSpec{classes});
  return b.finish();
}

using Factory = std::function<ModelSpec(const Dims&, int)>;
struct Registered {
  ZooEntry entry;
  Factory build;
};

const std::vector<Registered>& registry() {
  const Dims mnist{1, 28, 28}, cifar{3, 32, 32}, imagenet{3, 224, 224};
  auto cifar_resnet_of = [](int depth) { return [depth](const Dims& in, int k) { return cifar_resnet(depth, in, k); }; };
  auto vgg_of = [](std::string name, std::vector<int> config) {
    return [name, config](const Dims& in, int k) { return vgg(name, config, in, k); };
  };
  static const std::vector<Registered> models{
      {{"lenet5", "LeNet-5: 2 conv (ReLU, max pool) + 3 linear", mnist, 10}, lenet5},
      {{"alexnet", "AlexNet for 32x32: 5 conv, LRN, 3 linear with dropout", cifar, 10}, alexnet},
      {{"vgg11", "VGG-11 with batch norm, CIFAR-size", cifar, 10},
       vgg_of("vgg11", {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0})},
      {{"vgg16", "VGG-16 with batch norm, CIFAR-size", cifar, 10},
       vgg_of("vgg16", {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0})},
      {{"resnet20", "CIFAR ResNet-20, option-A shortcuts", cifar, 10}, cifar_resnet_of(20)},
      {{"resnet56", "CIFAR ResNet-56, option-A shortcuts", cifar, 10}, cifar_resnet_of(56)},
      {{"resnet110", "CIFAR ResNet-110, option-A shortcuts", cifar, 10}, cifar_resnet_of(110)},
      {{"resnet224", "CIFAR ResNet-224, option-A shortcuts", cifar, 10}, cifar_resnet_of(224)},
      {{"resnet362", "CIFAR ResNet-362, option-A shortcuts", cifar, 10}, cifar_resnet_of(362)},
      {{"resnet18", "ImageNet ResNet-18, basic blocks, projection shortcuts", imagenet, 1000},
       [](const Dims& in, int k) { return imagenet_resnet(18, in, k); }},
      {{"resnet50", "ImageNet ResNet-50, bottlenecks, projection shortcuts", imagenet, 1000},
       [](const Dims& in, int k) { return imagenet_resnet(50, in, k); }},
  };
  return models;
}

const Registered& find(const std::string& name) {
  std::string names;
  for (const Registered& r : registry()) {
    if (r.entry.name == name) return r;
    names += (names.empty() ? "" : ", ") + r.entry.name;
  }
  BATON_FAIL("unknown model '" << name << "'; choose one of: " << names << " (baton models lists them)");
}

}  // namespace

const std::vector<ZooEntry>& zoo() {
  static const std::vector<ZooEntry> entries = [] {
    std::vector<ZooEntry> list;
    for (const Registered& r : registry()) list.push_back(r.entry);
    return list;
  }();
  return entries;
}

const ZooEntry& zoo_entry(const std::string& name) { return find(name).entry; }

ModelSpec build_model(const std::string& name, const Dims& input, int classes) {
  BATON_CHECK(input.size() == 3, "models take C×H×W images, not " << to_string(input));
  ModelSpec model = find(name).build(input, classes);
  infer_shapes(model, 1);  // fails here, with the layer named, when the model does not fit the input
  return model;
}

}  // namespace baton::layers
