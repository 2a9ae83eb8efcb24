// Blocking collectives over the whole job, for the rare moments every rank must agree: whether to
// stop, which checkpoint to resume from, who wrote which file. In one process they are trivial;
// over MPI they run on the world communicator (the job is started with MPI_THREAD_MULTIPLE).
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

namespace baton::comm {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual bool is_root() const = 0;  // world rank 0
  virtual bool any(bool mine) = 0;  // true on every rank when true on any
  // Rank 0 gets every rank's string in rank order; the others get an empty vector.
  virtual std::vector<std::string> gather(const std::string& mine) = 0;
  virtual std::string broadcast(const std::string& root_value) = 0;  // rank 0's value, everywhere
};

// All ranks in this process: nothing to exchange.
std::unique_ptr<Collectives> single_process_collectives();
std::unique_ptr<Collectives> mpi_collectives(MPI_Comm world);

}  // namespace baton::comm
