// The MPI world as a stages × replicas grid: world rank r is stage r % K of replica r / K (the
// numbering the schedule builders use), with one communicator per stage (its replicas average
// over it) and one per replica (its pipeline). Every rank checks the same things before any
// communication, so a bad configuration fails everywhere with the same sentence.
#pragma once

#include <mpi.h>

namespace baton::comm {

class Topology {
 public:
  // Throws baton::Error (on every rank alike) when stages × replicas is not the world size.
  Topology(int stages, int replicas, MPI_Comm world = MPI_COMM_WORLD);
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  int stages() const { return stages_; }
  int replicas() const { return replicas_; }
  int rank() const { return rank_; }
  int stage() const { return rank_ % stages_; }
  int replica() const { return rank_ / stages_; }
  int world_rank_of(int stage, int replica) const { return replica * stages_ + stage; }

  MPI_Comm world() const { return world_; }
  MPI_Comm stage_comm() const { return stage_comm_; }        // this stage's replicas, ranked by replica
  MPI_Comm pipeline_comm() const { return pipeline_comm_; }  // this replica's stages, ranked by stage

 private:
  int stages_, replicas_, rank_ = 0;
  MPI_Comm world_;
  MPI_Comm stage_comm_ = MPI_COMM_NULL, pipeline_comm_ = MPI_COMM_NULL;
};

// BATON_CHECK_MPI(call): throws baton::Error with MPI's own text when the call fails.
void check_mpi(int status, const char* call, const char* file, int line);
#define BATON_CHECK_MPI(call) ::baton::comm::check_mpi((call), #call, __FILE__, __LINE__)

}  // namespace baton::comm
