// The model zoo: the networks of the papers baton builds on, by name, for a given input shape
// and class count. CIFAR-style ResNets use the option-A (zero-padding) shortcut of He et al.;
// ImageNet-style ResNets use the projection (1x1 conv + batch norm) shortcut.
#pragma once

#include <string>
#include <vector>

#include "layers/model_spec.hpp"

namespace baton::layers {

struct ZooEntry {
  std::string name;
  std::string description;
  Dims natural_input;  // {C, H, W} of the data it was designed for
  int natural_classes;
};

const std::vector<ZooEntry>& zoo();
const ZooEntry& zoo_entry(const std::string& name);  // throws, listing the names, when unknown

ModelSpec build_model(const std::string& name, const Dims& input, int classes);

}  // namespace baton::layers
