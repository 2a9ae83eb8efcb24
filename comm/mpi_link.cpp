// Implementation of MpiLink.
#include "comm/mpi_link.hpp"

#include <algorithm>
#include <numeric>

#include "runtime/base/error.hpp"
#include "runtime/base/overloaded.hpp"

namespace baton::comm {

using schedulers::Direction;

namespace {
size_t total(const std::vector<size_t>& sizes) { return std::accumulate(sizes.begin(), sizes.end(), size_t(0)); }
}  // namespace

MpiLink::MpiLink(Engine& engine, const Topology& topology, const BoundarySizes& sizes)
    : engine_(engine), topology_(topology), sizes_(sizes) {
  int* upper = nullptr;
  int found = 0;
  BATON_CHECK_MPI(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &upper, &found));  // defined on the world
  if (found && upper) tag_limit_ = *upper;
  handshake();
}

MpiLink::~MpiLink() = default;

// Each stage sends the sizes of the tensors it hands forward; the next stage compares them with
// the sizes it expects, so a mismatch is named before any training message flows.
void MpiLink::handshake() {
  const int stage = topology_.stage();
  BATON_CHECK(sizes_.activations_out.size() <= 32, "a stage boundary carries at most 32 tensors");
  // Each size as two floats (high and low 20 bits), exact up to 2^44 values.
  std::vector<float> mine{float(sizes_.activations_out.size())};
  for (size_t size : sizes_.activations_out) {
    mine.push_back(float(size >> 20));
    mine.push_back(float(size & ((size_t(1) << 20) - 1)));
  }
  std::vector<Engine::Handle> handles;
  if (stage + 1 < topology_.stages())
    handles.push_back(engine_.send(mine.data(), int(mine.size()), stage + 1, 0, topology_.pipeline_comm()));
  if (stage > 0) {
    std::vector<float> theirs(1 + 2 * 32, 0.0f);  // up to 32 tensors
    Engine::Handle receive = engine_.receive(theirs.data(), int(theirs.size()), stage - 1, 0, topology_.pipeline_comm());
    engine_.wait(receive);
    std::vector<size_t> got;
    for (int i = 0; i < int(theirs[0]); ++i)
      got.push_back((size_t(theirs[size_t(2 * i + 1)]) << 20) + size_t(theirs[size_t(2 * i + 2)]));
    BATON_CHECK(got == sizes_.activations_in,
                "stage " << stage - 1 << " hands on " << got.size() << " tensor(s) of " << total(got)
                         << " values but stage " << stage << " expects " << sizes_.activations_in.size()
                         << " of " << total(sizes_.activations_in)
                         << "; start every rank with the same model, data set and --partition");
  }
  for (Engine::Handle h : handles) engine_.wait(h);
}

// Programs name world ranks; on this replica's pipeline communicator a rank is its stage.
int MpiLink::peer(int world_rank) const {
  BATON_CHECK(world_rank / topology_.stages() == topology_.replica(),
              "rank " << topology_.rank() << " has no link to rank " << world_rank << ", which is in another replica");
  return world_rank % topology_.stages();
}

int MpiLink::tag_of(Direction direction, int64_t microbatch) const {
  // Messages between two ranks do not overtake each other, so reusing a tag long after is safe.
  const int64_t slots = int64_t(tag_limit_) / 2 - 1;
  return int(1 + 2 * (microbatch % slots) + (direction == Direction::gradient ? 1 : 0));
}

size_t MpiLink::message_size(Direction direction) const {
  // Activations arrive in the shape of this stage's inputs; gradients in the shape of its outputs.
  return total(direction == Direction::activation ? sizes_.activations_in : sizes_.activations_out);
}

std::vector<float> MpiLink::take_buffer(size_t size) {
  auto fit = std::find_if(pool_.begin(), pool_.end(), [&](const std::vector<float>& b) { return b.size() == size; });
  if (fit == pool_.end()) return std::vector<float>(size);
  std::vector<float> buffer = std::move(*fit);
  pool_.erase(fit);
  return buffer;
}

void MpiLink::post(const Key& key) {
  if (receives_.count(key)) return;
  auto [direction, microbatch, from] = key;
  Pending pending{0, take_buffer(message_size(direction))};
  pending.handle = engine_.receive(pending.buffer.data(), int(pending.buffer.size()), peer(from),
                                   tag_of(direction, microbatch), topology_.pipeline_comm());
  receives_.emplace(key, std::move(pending));
}

void MpiLink::post_ahead() {
  while (next_to_post_ < expected_.size() && receives_.size() < lookahead_) post(expected_[next_to_post_++]);
}

void MpiLink::begin_program(const schedulers::Program& program, size_t lookahead) {
  expected_.clear();
  next_to_post_ = 0;
  lookahead_ = lookahead;
  for (const schedulers::Instruction& instruction : program.instructions) {
    std::visit(Overloaded{
                   [&](const schedulers::RecvActivation& r) { expected_.emplace_back(Direction::activation, r.microbatch, r.from); },
                   [&](const schedulers::RecvGrad& r) { expected_.emplace_back(Direction::gradient, r.microbatch, r.from); },
                   [](const auto&) {},
               },
               instruction);
  }
  post_ahead();
}

void MpiLink::reap_sends() {
  for (auto it = sends_.begin(); it != sends_.end();) {
    if (engine_.done(it->handle)) {
      pool_.push_back(std::move(it->buffer));
      it = sends_.erase(it);
    } else {
      ++it;
    }
  }
}

void MpiLink::send(Direction direction, int64_t microbatch, int to, std::vector<std::span<const float>> payload) {
  reap_sends();
  size_t size = 0;
  for (std::span<const float> t : payload) size += t.size();
  Pending pending{0, take_buffer(size)};
  float* out = pending.buffer.data();
  for (std::span<const float> t : payload) out = std::copy(t.begin(), t.end(), out);
  pending.handle =
      engine_.send(pending.buffer.data(), int(size), peer(to), tag_of(direction, microbatch), topology_.pipeline_comm());
  sends_.push_back(std::move(pending));
}

bool MpiLink::try_receive(Direction direction, int64_t microbatch, int from, std::vector<std::span<float>> into) {
  const Key key{direction, microbatch, from};
  post(key);
  auto it = receives_.find(key);
  if (!engine_.done(it->second.handle)) return false;
  const float* in = it->second.buffer.data();
  for (std::span<float> t : into) {
    std::copy(in, in + t.size(), t.begin());
    in += t.size();
  }
  pool_.push_back(std::move(it->second.buffer));
  receives_.erase(it);
  post_ahead();
  return true;
}

void MpiLink::finish() {
  for (Pending& s : sends_) engine_.wait(s.handle);
  for (Pending& s : sends_) pool_.push_back(std::move(s.buffer));
  sends_.clear();
  BATON_CHECK(receives_.empty(), "rank " << topology_.rank() << " ended its program with " << receives_.size()
                                         << " message(s) still expected");
}

}  // namespace baton::comm
