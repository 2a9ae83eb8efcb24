// In-process twins of the communication layer: every rank of a stages × replicas configuration in
// one process, messages in mailboxes and averages over replicas summed in replica order, so a
// one-process run does exactly the arithmetic of the distributed one.
#pragma once

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "schedulers/executor.hpp"

namespace baton::comm {

class InProcessHub {
 public:
  InProcessHub(int stages, int replicas, bool sharded);
  ~InProcessHub();
  schedulers::Link& link(int rank);
  schedulers::Averager& averager(int rank);
  bool idle() const;  // no message or average left behind

 private:
  friend class InProcessLink;
  friend class InProcessAverager;
  struct Room {  // one average (or gather) of one stage: a contribution per replica
    std::vector<std::vector<float>> contributions;
    int started = 0, finished = 0;
    std::vector<float> result;
  };
  using MessageKey = std::tuple<schedulers::Direction, int64_t, int, int>;  // (direction, microbatch, from, to)
  using RoomKey = std::tuple<bool, int, int64_t, int>;                      // (gather?, stage, update, part)

  int stages_, replicas_;
  bool sharded_;
  std::map<MessageKey, std::vector<std::vector<float>>> mailboxes_;
  std::map<RoomKey, Room> rooms_;
  std::vector<std::unique_ptr<schedulers::Link>> links_;
  std::vector<std::unique_ptr<schedulers::Averager>> averagers_;
};

}  // namespace baton::comm
