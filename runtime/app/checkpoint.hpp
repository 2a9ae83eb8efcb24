// Checkpoints of a training run. Each process writes its own stages' weights, batch-norm statistics
// and momentum as safetensors files keyed by PyTorch's tensor names (so any stage split loads them);
// rank 0 then commits a JSON manifest (temporary folder, fsync, rename): a checkpoint exists only
// once its manifest does, and one killed while writing leaves the previous one intact.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "layers/model_spec.hpp"
#include "runtime/app/run_plan.hpp"

namespace baton {

// "step-00000123": the folder of the checkpoint taken after 123 updates.
std::string checkpoint_name(int64_t updates);

struct WrittenCheckpoint {
  std::string folder;  // on every rank
  int64_t bytes = 0;   // all its files together (on rank 0)
};

class CheckpointDir {
 public:
  CheckpointDir(std::string path, int keep);
  const std::string& path() const { return path_; }

  // Creates the folder and makes sure files can be written in it, before any training.
  void prepare(comm::Collectives& collectives) const;

  // Every process calls it at the same point and it returns once the checkpoint exists. `manifest`
  // holds what rank 0 records besides the files.
  WrittenCheckpoint write(Run& run, nlohmann::json manifest, int64_t updates) const;

  // The newest checkpoint whose manifest and files are whole, chosen by rank 0 and the same on every
  // rank. Unusable newer ones are named in a warning; if some exist but none is usable, an error.
  std::optional<std::string> newest_usable(comm::Collectives& collectives) const;

 private:
  WrittenCheckpoint commit(nlohmann::json manifest, const std::vector<std::string>& records, int64_t updates) const;
  void prune() const;
  std::string path_;
  int keep_;
};

nlohmann::json read_manifest(const std::string& checkpoint);

// Loads a checkpoint into the run's workers: weights, momentum and batch-norm statistics by tensor
// name, whatever the split that wrote it (each replica takes its own statistics if the checkpoint
// has that replica, else replica 0's). Throws naming any tensor that is missing or mis-shaped.
void load_checkpoint(Run& run, const std::string& checkpoint, const nlohmann::json& manifest);

// --init-from: weights and batch-norm statistics from one safetensors file with the model's tensor
// names; momentum stays zero. Missing, extra or mis-shaped tensors are named in one sentence.
void load_initial_weights(Run& run, const layers::ModelSpec& model, const std::string& path);

// `baton export`: the whole model of a checkpoint (a folder of checkpoints: its newest usable one)
// as one safetensors file, with the model, input shape and input normalisation as metadata.
void export_model(const std::string& checkpoint_or_dir, const std::string& output);

}  // namespace baton
