// Discrete-event simulation of all ranks' programs against a cost per instruction: receives wait
// for their send, averaging waits for every replica of the stage. Gives each instruction's start
// and end, the makespan and each rank's busy time; finds deadlocks under blocking semantics.
// Messages on one link, and the collectives of one stage's replicas, take their turns; ranks on
// one node share its cores.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "schedulers/instruction.hpp"

namespace baton::schedulers {

// How the simulated ranks share their nodes' cores (processor sharing): while the ranks computing
// passes (forward, data or weight gradient) or optimizer steps on a node ask for more cores than
// it has, each computes at cores / asked of its full speed. Other instructions that cost time (a
// collective's work on the cores) keep their price, which was calibrated with the node's ranks
// all doing it at once. Empty `node` or no cores: every rank computes at full speed all the time.
struct CoreSharing {
  double cores_per_node = 0;
  std::vector<int> node;  // per program: the node it computes on
  // Per program: the cores it occupies on each node while it computes, as (node, cores). More than
  // its threads on its own node where replicas that are not simulated compute alongside it.
  std::vector<std::vector<std::pair<int, double>>> load;
};

// Seconds (or units) an instruction occupies its rank at full speed; sends and waits cost nothing
// on the rank. A message arrives `latency(...)` after its send, or after the link's previous message
// arrived; a collective ends `latency(...)` after its last replica started it, or after the stage's
// previous collective ended. Programs given are the ranks simulated: pass one replica's programs
// alone and a collective completes when that replica starts it (the symmetric case, priced whole).
struct CostModel {
  std::function<double(const Program&, const Instruction&)> compute;
  std::function<double(const Program&, const Instruction&)> latency;  // of a send, or of a collective
  CoreSharing cores;
};

// Forward, BackwardData and BackwardWeights cost 1 per stage (split evenly over parts); the rest 0.
CostModel unit_costs();

struct Span {
  double start = 0, end = 0;
};

struct Simulation {
  std::vector<std::vector<Span>> spans;  // per rank, per instruction
  double makespan = 0;
  std::vector<double> busy;              // per rank: time spent computing (slowed down where cores are shared)
  bool deadlocked = false;
  std::string blocked;                   // when deadlocked: each stuck rank and what it waits for

  double idle_fraction(int rank) const { return makespan > 0 ? 1.0 - busy[rank] / makespan : 0.0; }
};

Simulation simulate(const std::vector<Program>& programs, const CostModel& costs);

}  // namespace baton::schedulers
