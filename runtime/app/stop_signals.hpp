// SIGUSR1 and SIGTERM as requests to stop cleanly: while a StopSignals is alive they only record
// which arrived; the trainer reads it at its next checkpoint point, where all ranks agree (through
// MPI) to write a checkpoint and stop. A batch system's warning before a time limit or preemption
// therefore ends the job with its work saved.
#pragma once

namespace baton {

class StopSignals {
 public:
  explicit StopSignals(bool install);  // false: signals keep their default effect
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int received() const;  // the signal's number, or 0

 private:
  bool installed_;
};

}  // namespace baton
