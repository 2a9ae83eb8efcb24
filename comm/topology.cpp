// Implementation of the grid topology and the MPI error check.
#include "comm/topology.hpp"

#include <string>

#include "runtime/base/error.hpp"

namespace baton::comm {

void check_mpi(int status, const char* call, const char* file, int line) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  raise_error(file, line, std::string("MPI failed in ") + call + ": " + std::string(text, size_t(length)));
}

Topology::Topology(int stages, int replicas, MPI_Comm world) : stages_(stages), replicas_(replicas), world_(world) {
  int size = 0;
  BATON_CHECK_MPI(MPI_Comm_size(world, &size));
  BATON_CHECK_MPI(MPI_Comm_rank(world, &rank_));
  BATON_CHECK(stages >= 1 && replicas >= 1, "a grid needs at least one stage and one replica");
  BATON_CHECK(stages * replicas == size, stages << " stage(s) x " << replicas << " replica(s) make " << stages * replicas
                                                << " ranks, but this job has " << size << "; start it with mpirun -n "
                                                << stages * replicas << " or change --stages/--replicas");
  BATON_CHECK_MPI(MPI_Comm_split(world, stage(), replica(), &stage_comm_));
  BATON_CHECK_MPI(MPI_Comm_split(world, replica(), stage(), &pipeline_comm_));
}

Topology::~Topology() {
  if (stage_comm_ != MPI_COMM_NULL) MPI_Comm_free(&stage_comm_);
  if (pipeline_comm_ != MPI_COMM_NULL) MPI_Comm_free(&pipeline_comm_);
}

}  // namespace baton::comm
