// The zoo against published facts: parameter counts equal the PyTorch definitions of the same
// networks (torchvision for ResNet-18/50, He et al.'s CIFAR ResNets with option A, LeNet-5 and the
// VGGs as counted by bench/pytorch_models.py), and each model maps its data set's images to one
// logit per class.
#include <gtest/gtest.h>

#include "layers/zoo.hpp"
#include "runtime/base/error.hpp"

namespace baton::layers {
namespace {

struct Published {
  const char* model;
  int64_t params;
};

class ZooFacts : public ::testing::TestWithParam<Published> {};

TEST_P(ZooFacts, ParameterCountAndLogitShape) {
  const Published& p = GetParam();
  const ZooEntry& entry = zoo_entry(p.model);
  ModelSpec model = build_model(p.model, entry.natural_input, entry.natural_classes);
  EXPECT_EQ(count_params(model), p.params);
  ModelShapes shapes = infer_shapes(model, 7);
  const Dims& logits = shapes.inputs.back()[0];
  EXPECT_EQ(logits, (Dims{7, entry.natural_classes}));
  EXPECT_EQ(shapes.outputs.back(), (Dims{7}));  // one loss per image
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooFacts,
                         ::testing::Values(Published{"lenet5", 61706}, Published{"alexnet", 28714826},
                                           Published{"vgg11", 9231114}, Published{"vgg16", 14728266},
                                           Published{"resnet20", 269722}, Published{"resnet56", 853018},
                                           Published{"resnet110", 1727962}, Published{"resnet224", 3575066},
                                           Published{"resnet362", 5811034}, Published{"resnet18", 11689512},
                                           Published{"resnet50", 25557032}),
                         [](const auto& info) { return std::string(info.param.model); });

TEST(Zoo, LeNetTakesCifarImagesToo) {
  ModelSpec model = build_model("lenet5", {3, 32, 32}, 10);
  EXPECT_EQ(infer_shapes(model, 2).inputs.back()[0], (Dims{2, 10}));
}

TEST(Zoo, ModelThatDoesNotFitNamesTheLayer) {
  try {
    build_model("vgg16", {1, 28, 28}, 10);
    FAIL() << "vgg16 accepted 28x28 images";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("pool5"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace baton::layers
