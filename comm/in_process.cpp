// Implementation of the in-process links and averagers.
#include "comm/in_process.hpp"

#include <algorithm>
#include <map>

#include "runtime/base/error.hpp"

namespace baton::comm {

using schedulers::Direction;

class InProcessLink final : public schedulers::Link {
 public:
  InProcessLink(InProcessHub& hub, int rank) : hub_(hub), rank_(rank) {}

  void send(Direction direction, int64_t microbatch, int to, std::vector<std::span<const float>> payload) override {
    std::vector<std::vector<float>> copy;
    for (std::span<const float> tensor : payload) copy.emplace_back(tensor.begin(), tensor.end());
    auto [it, fresh] = hub_.mailboxes_.emplace(InProcessHub::MessageKey{direction, microbatch, rank_, to}, std::move(copy));
    BATON_CHECK(fresh, "rank " << rank_ << " sent microbatch " << microbatch << " to rank " << to << " twice");
  }

  bool try_receive(Direction direction, int64_t microbatch, int from, std::vector<std::span<float>> into) override {
    auto it = hub_.mailboxes_.find({direction, microbatch, from, rank_});
    if (it == hub_.mailboxes_.end()) return false;
    BATON_CHECK(it->second.size() == into.size(), "rank " << rank_ << " expected " << into.size()
                                                          << " tensors from rank " << from << " but got "
                                                          << it->second.size());
    for (size_t t = 0; t < into.size(); ++t) {
      BATON_CHECK(it->second[t].size() == into[t].size(), "rank " << rank_ << " received a tensor of "
                                                                  << it->second[t].size() << " values where "
                                                                  << into[t].size() << " were expected");
      std::copy(it->second[t].begin(), it->second[t].end(), into[t].begin());
    }
    hub_.mailboxes_.erase(it);
    return true;
  }

 private:
  InProcessHub& hub_;
  int rank_;
};

class InProcessAverager final : public schedulers::Averager {
 public:
  InProcessAverager(InProcessHub& hub, int rank)
      : hub_(hub), stage_(rank % hub.stages_), replica_(rank / hub.stages_) {}

  void start(int64_t update, int part, std::span<float> gradient) override {
    contribute({false, stage_, update, part}, gradient);
    summed_into_[{update, part}] = gradient;
  }

  bool try_finish(int64_t update, int part) override {
    auto target = summed_into_.find({update, part});
    BATON_CHECK(target != summed_into_.end(), "no average of update " << update << ", bucket " << part << " was started");
    if (!finish({false, stage_, update, part}, target->second, [&](InProcessHub::Room& room) { return sum(room); }))
      return false;
    summed_into_.erase(target);
    return true;
  }

  std::pair<size_t, size_t> shard(size_t size) const override {
    if (!hub_.sharded_) return {0, size};
    return {size * size_t(replica_) / size_t(hub_.replicas_), size * size_t(replica_ + 1) / size_t(hub_.replicas_)};
  }

  void start_gather(int64_t update, int part, std::span<const float> weights) override {
    contribute({true, stage_, update, part}, weights);
  }

  // Every replica's shard of its own weights, assembled.
  bool try_finish_gather(int64_t update, int part, std::span<float> weights) override {
    return finish({true, stage_, update, part}, weights, [&](InProcessHub::Room& room) {
      std::vector<float> assembled(room.contributions[0].size());
      for (int r = 0; r < hub_.replicas_; ++r) {
        auto [begin, end] = shard_of(r, assembled.size());
        std::copy(room.contributions[r].begin() + long(begin), room.contributions[r].begin() + long(end),
                  assembled.begin() + long(begin));
      }
      return assembled;
    });
  }

 private:
  std::pair<size_t, size_t> shard_of(int replica, size_t size) const {
    return {size * size_t(replica) / size_t(hub_.replicas_), size * size_t(replica + 1) / size_t(hub_.replicas_)};
  }

  void contribute(const InProcessHub::RoomKey& key, std::span<const float> values) {
    InProcessHub::Room& room = hub_.rooms_[key];
    room.contributions.resize(size_t(hub_.replicas_));
    BATON_CHECK(room.contributions[replica_].empty(), "replica " << replica_ << " started the same average twice");
    room.contributions[replica_].assign(values.begin(), values.end());
    ++room.started;
  }

  // The sum over replicas in replica order: what every replica sees.
  std::vector<float> sum(const InProcessHub::Room& room) const {
    std::vector<float> total = room.contributions[0];
    for (int r = 1; r < hub_.replicas_; ++r)
      std::transform(total.begin(), total.end(), room.contributions[r].begin(), total.begin(), std::plus<float>());
    return total;
  }

  template <class Combine>
  bool finish(const InProcessHub::RoomKey& key, std::span<float> out, Combine combine) {
    auto it = hub_.rooms_.find(key);
    if (it == hub_.rooms_.end() || it->second.started < hub_.replicas_) return false;
    InProcessHub::Room& room = it->second;
    if (room.result.empty()) room.result = combine(room);
    BATON_CHECK(room.result.size() == out.size(), "replicas of stage " << stage_ << " average tensors of different sizes");
    auto [begin, end] = std::get<0>(key) ? std::make_pair(size_t(0), out.size()) : shard(out.size());
    std::copy(room.result.begin() + long(begin), room.result.begin() + long(end), out.begin() + long(begin));
    if (++room.finished == hub_.replicas_) hub_.rooms_.erase(it);
    return true;
  }

  InProcessHub& hub_;
  int stage_, replica_;
  std::map<std::pair<int64_t, int>, std::span<float>> summed_into_;  // the buffer each started sum goes to
};

InProcessHub::InProcessHub(int stages, int replicas, bool sharded)
    : stages_(stages), replicas_(replicas), sharded_(sharded) {
  for (int rank = 0; rank < stages * replicas; ++rank) {
    links_.push_back(std::make_unique<InProcessLink>(*this, rank));
    averagers_.push_back(std::make_unique<InProcessAverager>(*this, rank));
  }
}

InProcessHub::~InProcessHub() = default;

schedulers::Link& InProcessHub::link(int rank) { return *links_.at(size_t(rank)); }
schedulers::Averager& InProcessHub::averager(int rank) { return *averagers_.at(size_t(rank)); }
bool InProcessHub::idle() const { return mailboxes_.empty() && rooms_.empty(); }

}  // namespace baton::comm
