// `baton simulate`: the programs a configuration's ranks would run, played against measured layer
// costs and an α–β network. One pipeline replica is simulated instruction by instruction; every
// replica does the same, so collectives are priced whole for R replicas without simulating them.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/model_spec.hpp"
#include "runtime/app/cli.hpp"
#include "runtime/app/cost_profile.hpp"
#include "runtime/base/timeline.hpp"
#include "schedulers/network_model.hpp"

namespace baton {

// Reads a network file ({"intra_node": {"latency_s", "bandwidth_bytes_per_s"}, "inter_node": ...},
// as baton profile --network writes it); one sentence when it is missing or corrupt.
schedulers::NetworkModel read_network(const std::string& path);
nlohmann::json to_json(const schedulers::NetworkModel& network);

// `baton profile --network`: calibrates the model under mpirun, prints it beside an allreduce
// measured and priced, and writes it to --output (rank 0).
void run_network_profile(const ProfileCommand& command, std::ostream& out);

// What one configuration is predicted to do.
struct StagePrediction {
  double busy = 0;         // fraction of the run computing
  double communication = 0;  // fraction waiting for averaging or gathering (exposed communication)
  double bubble = 0;       // fraction waiting for a neighbour's activation or gradient, or done early
  double peak_bytes = 0;   // weights, gradients, optimizer state, stashes and the slots in flight
  int64_t forward_delay = 0;
};

struct Prediction {
  double step_seconds = 0;
  double images_per_sec = 0;
  std::vector<StagePrediction> stages;  // replica 0's ranks; every replica alike
  std::vector<std::string> partition;   // the first layer of stages 2..K
  double bubble_fraction() const;       // means over the stages
  double communication_fraction() const;
  double peak_bytes() const;            // the largest rank's
};

struct Scenario {
  const layers::ModelSpec& model;
  const CostProfile& profile;
  schedulers::NetworkModel network;
  ParallelConfig parallel;
  int64_t batch_size = 1;
  int64_t iterations = 1;
};

// Simulates `iterations` updates; the timeline, if given, gets replica 0's instructions in seconds.
Prediction predict(const Scenario& scenario, Timeline* timeline = nullptr);

// `baton simulate`: one configuration's table and JSON line, or with --search the ranked list.
void run_simulate(const SimulateCommand& command, std::ostream& out);

}  // namespace baton
