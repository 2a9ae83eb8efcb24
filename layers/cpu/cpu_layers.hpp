// Constructors of the oneDNN CPU layers, one per layer kind; make_cpu_layer() dispatches on the
// LayerSpec. Every layer here creates its primitives in setup() and only replays them afterwards.
#pragma once

#include <memory>

#include "layers/cpu/dnnl_common.hpp"
#include "layers/layer.hpp"

namespace baton::layers::cpu {

std::unique_ptr<Layer> make_conv2d(const Conv2dSpec& spec);
std::unique_ptr<Layer> make_linear(const LinearSpec& spec);
std::unique_ptr<Layer> make_relu();
std::unique_ptr<Layer> make_pool(const LayerSpec& spec);  // max, average and global average
bool tiled_max_pool_fits(const MaxPoolSpec& spec, const TensorSpec& input);
std::unique_ptr<Layer> make_tiled_max_pool(const MaxPoolSpec& spec);
std::unique_ptr<Layer> make_batch_norm(const BatchNormSpec& spec);
std::unique_ptr<Layer> make_lrn(const LrnSpec& spec);
std::unique_ptr<Layer> make_dropout(const DropoutSpec& spec);
std::unique_ptr<Layer> make_flatten();
std::unique_ptr<Layer> make_add();
std::unique_ptr<Layer> make_shortcut_pad(const ShortcutPadSpec& spec);
std::unique_ptr<Layer> make_softmax_cross_entropy();

}  // namespace baton::layers::cpu

namespace baton::layers {
std::unique_ptr<Layer> make_cpu_layer(const LayerSpec& spec);

}  // namespace baton::layers
