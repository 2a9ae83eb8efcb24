// Implementation of the oneDNN engine, layouts and reorders shared by the CPU kernels.
#include "layers/cpu/dnnl_common.hpp"

#include <algorithm>
#include <array>

namespace baton::layers::cpu {

dnnl::engine& engine() {
  static dnnl::engine instance(dnnl::engine::kind::cpu, 0);
  return instance;
}

dnnl::stream& stream() {
  static dnnl::stream instance(engine());
  return instance;
}

namespace {
using tag = memory::format_tag;

tag plain_tag(size_t rank) {
  static const std::array<tag, 6> tags{tag::undef, tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde};
  BATON_CHECK(rank >= 1 && rank < tags.size(), "tensors of rank " << rank << " are not supported");
  return tags[rank];
}

std::string guess_name(const memory::desc& desc) {
  struct Named {
    tag format;
    const char* name;
  };
  static const Named image_tags[] = {{tag::nchw, "nchw"},     {tag::nhwc, "nhwc"},
                                     {tag::nChw8c, "nChw8c"}, {tag::nChw16c, "nChw16c"},
                                     {tag::OIhw16i16o, "OIhw16i16o"}, {tag::OIhw8i8o, "OIhw8i8o"}};
  memory::dims dims = desc.dims();
  if (dims.size() == 4) {
    for (const Named& n : image_tags) {
      if (memory::desc(dims, memory::data_type::f32, n.format) == desc) return n.name;
    }
  }
  return "blocked" + std::to_string(dims.size()) + "d";
}
}  // namespace

DnnlLayout::DnnlLayout(memory::desc desc) : desc_(std::move(desc)), name_(guess_name(desc_)) {}

bool DnnlLayout::same_as(const Layout& other) const {
  const auto* dnnl_other = dynamic_cast<const DnnlLayout*>(&other);
  return dnnl_other != nullptr && dnnl_other->desc_ == desc_;
}

memory::dims to_dnnl(const Dims& dims) { return memory::dims(dims.begin(), dims.end()); }

memory::desc plain_desc(const Dims& dims) {
  return memory::desc(to_dnnl(dims), memory::data_type::f32, plain_tag(dims.size()));
}

memory::desc any_desc(const Dims& dims) { return memory::desc(to_dnnl(dims), memory::data_type::f32, tag::any); }

memory::desc desc_of(const TensorSpec& spec) {
  if (spec.plain()) return plain_desc(spec.dims);
  const auto* layout = dynamic_cast<const DnnlLayout*>(spec.layout.get());
  BATON_CHECK(layout != nullptr, "the CPU kernels cannot read a tensor in layout " << spec.layout_name());
  return layout->desc();
}

TensorSpec spec_of(const Dims& dims, const memory::desc& desc) {
  if (desc == plain_desc(dims)) return TensorSpec{dims, nullptr};
  return TensorSpec{dims, std::make_shared<DnnlLayout>(desc)};
}

memory wrap(const memory::desc& desc, const void* data) {
  return memory(desc, engine(), const_cast<void*>(data));
}

memory wrap(const Tensor& tensor) { return wrap(desc_of(tensor.spec()), tensor.data()); }

int channel_block(const TensorSpec& spec) {
  if (spec.dims.size() != 4) return 0;
  if (spec.plain()) return 1;
  memory::desc desc = desc_of(spec);
  for (int block : {8, 16}) {
    if (desc == desc_of(channel_blocked_spec(spec.dims, block))) return block;
  }
  return 0;
}

TensorSpec channel_blocked_spec(const Dims& dims, int block) {
  if (block == 1) return TensorSpec{dims, nullptr};
  BATON_CHECK(block == 8 || block == 16, "unsupported channel block " << block);
  return spec_of(dims, memory::desc(to_dnnl(dims), memory::data_type::f32, block == 8 ? tag::nChw8c : tag::nChw16c));
}

void execute(const dnnl::primitive& primitive, const Args& args) { primitive.execute(stream(), args); }

namespace {
dnnl::eltwise_forward::primitive_desc relu_forward_pd(const memory::desc& data) {
  return dnnl::eltwise_forward::primitive_desc(
      {dnnl::prop_kind::forward_training, dnnl::algorithm::eltwise_relu_use_dst_for_bwd, data, 0.f}, engine());
}
}  // namespace

dnnl::primitive relu_forward(const memory::desc& data) { return dnnl::eltwise_forward(relu_forward_pd(data)); }

dnnl::primitive relu_backward(const memory::desc& data) {
  return dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(
      {dnnl::algorithm::eltwise_relu_use_dst_for_bwd, data, data, 0.f}, engine(), relu_forward_pd(data)));
}

std::vector<Tensor> slot_buffers(const memory::desc& desc, int slots) {
  int64_t floats = int64_t((desc.get_size() + sizeof(float) - 1) / sizeof(float));
  std::vector<Tensor> buffers;
  for (int s = 0; s < slots; ++s) buffers.emplace_back(TensorSpec{{std::max<int64_t>(floats, 1)}, nullptr});
  return buffers;
}

Reorder::Reorder(const memory::desc& src, const memory::desc& dst, bool accumulate) : src_(src), dst_(dst) {
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  primitive_ = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), src, engine(), dst, attr));
}

void Reorder::run(const void* src, void* dst) const {
  execute(primitive_, {{DNNL_ARG_FROM, wrap(src_, src)}, {DNNL_ARG_TO, wrap(dst_, dst)}});
}

LayoutAdapter::LayoutAdapter(const memory::desc& have, const memory::desc& want) : identity_(have == want) {
  if (identity_) return;
  to_wanted_ = Reorder(have, want, false);
  from_wanted_ = Reorder(want, have, false);
  scratch_ = Tensor(TensorSpec{{int64_t((want.get_size() + sizeof(float) - 1) / sizeof(float))}, nullptr});
}

const void* LayoutAdapter::in(const void* data) {
  if (identity_) return data;
  to_wanted_.run(data, scratch_.data());
  return scratch_.data();
}

void* LayoutAdapter::out(void* data) { return identity_ ? data : scratch_.data(); }

void LayoutAdapter::finish(void* data) const {
  if (!identity_) from_wanted_.run(scratch_.data(), data);
}

const void* CachedParam::get(const float* plain_data, uint64_t version) {
  if (adapter_.identity()) return plain_data;
  if (plain_data != cached_data_ || version != cached_version_) {
    converted_ = adapter_.in(plain_data);
    cached_data_ = plain_data;
    cached_version_ = version;
  }
  return converted_;
}

}  // namespace baton::layers::cpu
