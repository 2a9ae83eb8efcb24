// Implementation of the job-wide collectives.
#include "comm/collectives.hpp"

#include "comm/topology.hpp"

namespace baton::comm {
namespace {

class SingleProcess final : public Collectives {
 public:
  bool is_root() const override { return true; }
  bool any(bool mine) override { return mine; }
  std::vector<std::string> gather(const std::string& mine) override { return {mine}; }
  std::string broadcast(const std::string& root_value) override { return root_value; }
};

class OverMpi final : public Collectives {
 public:
  explicit OverMpi(MPI_Comm world) : world_(world) {
    BATON_CHECK_MPI(MPI_Comm_rank(world_, &rank_));
    BATON_CHECK_MPI(MPI_Comm_size(world_, &size_));
  }

  bool is_root() const override { return rank_ == 0; }

  bool any(bool mine) override {
    int value = mine ? 1 : 0, result = 0;
    BATON_CHECK_MPI(MPI_Allreduce(&value, &result, 1, MPI_INT, MPI_MAX, world_));
    return result != 0;
  }

  std::vector<std::string> gather(const std::string& mine) override {
    int length = int(mine.size());
    std::vector<int> lengths(static_cast<size_t>(size_), 0), offsets(static_cast<size_t>(size_), 0);
    BATON_CHECK_MPI(MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, world_));
    for (size_t r = 1; r < lengths.size(); ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
    std::string all(rank_ == 0 ? size_t(offsets.back() + lengths.back()) : 0, ' ');
    BATON_CHECK_MPI(MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0,
                                world_));
    if (rank_ != 0) return {};
    std::vector<std::string> each;
    for (size_t r = 0; r < lengths.size(); ++r) each.push_back(all.substr(size_t(offsets[r]), size_t(lengths[r])));
    return each;
  }

  std::string broadcast(const std::string& root_value) override {
    int length = int(root_value.size());
    BATON_CHECK_MPI(MPI_Bcast(&length, 1, MPI_INT, 0, world_));
    std::string value = rank_ == 0 ? root_value : std::string(size_t(length), ' ');
    BATON_CHECK_MPI(MPI_Bcast(value.data(), length, MPI_CHAR, 0, world_));
    return value;
  }

 private:
  MPI_Comm world_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Collectives> single_process_collectives() { return std::make_unique<SingleProcess>(); }
std::unique_ptr<Collectives> mpi_collectives(MPI_Comm world) { return std::make_unique<OverMpi>(world); }

}  // namespace baton::comm
