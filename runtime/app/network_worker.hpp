// The StageWorker of a rank on real layers: its stage's Network, weight versions per gradient
// bucket (part) with PipeDream stashes, the gradient and its average, SGD with the learning-rate
// schedule, and the slicing of each minibatch into this replica's microbatches.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "layers/network.hpp"
#include "runtime/data/data_loader.hpp"
#include "runtime/app/optimizer.hpp"
#include "schedulers/builders.hpp"
#include "schedulers/executor.hpp"

namespace baton {

// The minibatches of the current epoch by update index, for the ranks that read data. done_with()
// tells it one reader finished one microbatch of a minibatch, so it can be dropped.
class MinibatchSource {
 public:
  virtual ~MinibatchSource() = default;
  virtual const Batch& minibatch(int64_t update) = 0;
  virtual void done_with(int64_t update) = 0;
};

// Reads minibatches from a BatchLoader in order and keeps each until `readers` microbatch loads
// have used it (a pipeline's first stage reads an update long before its last stage does).
class LoaderSource final : public MinibatchSource {
 public:
  LoaderSource(BatchLoader& loader, int readers) : loader_(loader), readers_(readers) {}
  // Positions the loader at minibatch `first` of the epoch (a resumed run starts mid-epoch).
  // `on_done(n)`: n minibatches of the epoch have been used by all their readers.
  void start_epoch(int64_t epoch, int64_t first, std::function<void(int64_t)> on_done = {});
  const Batch& minibatch(int64_t update) override;
  void done_with(int64_t update) override;

 private:
  BatchLoader& loader_;
  int readers_;
  int64_t loaded_ = 0;  // minibatches taken from the loader this epoch
  int64_t finished_ = 0;
  std::function<void(int64_t)> on_done_;
  std::map<int64_t, std::pair<Batch, int>> cache_;  // update -> (batch, loads so far)
};

// A stretch of an epoch run as one program: the pipe fills at its start and drains at its end.
// An epoch is one segment, or several when checkpoints split it (every --checkpoint-every updates).
struct Segment {
  int64_t epoch = 1, epochs = 1;  // 1-based, of the run
  int64_t first = 0;              // its first update, counted within the epoch
  int64_t updates = 1;
  int64_t updates_before = 0;     // of the whole run before this segment: the LR schedule's position
  // Set where the run decides the pipeline as it goes (--hybrid-plateau); else the epoch's configured one.
  std::optional<schedulers::Pipeline> pipeline = std::nullopt;
};

// What a stage does about the weight delay of its schedule (README, "Staleness mitigations"). A pass
// of update u that sees weight version v is d = u - v updates behind.
struct StageStaleness {
  int64_t delay = 0;      // the stage's largest forward delay in the epoch's schedule
  float lr_scale = 1.0f;  // lr-scale: the stage learns at lr / (1 + delay)
  float momentum_cut = 0; // momentum: the stage's momentum is max(0, mu - delay / (1 + delay))
  bool predict = false;   // predict: a pass d behind uses W - d * lr * velocity (d updates ahead)
  bool local = false;     // local (delayed averaging, d = 1): a pass uses the weights the next SGD step would
                          // give if this replica's own newest gradient were the average it waits for
  bool warmup = false;    // warmup: the stage's rate ramps linearly over the run's first epoch
  float dc_lambda = 0;    // dc: the update's gradient g becomes g + lambda * g * g * (W_now - W_then), W_then
                          // the weights its first microbatch's forward used
};

struct WorkerOptions {
  layers::NetworkOptions network;       // batch = microbatch size; slots = the most any program uses
  std::vector<layers::Backend> stage_backends;  // per stage, in place of network.backend (--stage-backends)
  std::vector<layers::NodeRange> parts;  // gradient buckets of the stage, in order
  int stage = 0;
  int replica = 0, replicas = 1;
  int microbatches = 1;                  // per update
  SgdOptions sgd;
  LrSchedule schedule;                   // by global update number
};

class NetworkWorker final : public schedulers::StageWorker {
 public:
  NetworkWorker(const layers::ModelSpec& model, int first, int last, const WorkerOptions& options,
                MinibatchSource* data);

  // Microbatch and update numbers in programs start at 0 every segment; data, dropout masks and
  // learning rates follow the segment's place in its epoch and in the run, with the staleness
  // mitigations of the segment's schedule.
  void begin_segment(const Segment& segment, const StageStaleness& staleness = {});
  layers::Network& network() { return net_; }
  layers::ParamsView current_weights() { return {net_.weights().data(), generation_}; }
  int stage() const { return options_.stage; }
  int replica() const { return options_.replica; }
  int parts() const { return int(options_.parts.size()); }
  std::span<float> momentum() { return sgd_.velocity(); }
  std::span<float> momentum(int part) { return part_of(sgd_.velocity(), part); }
  void weights_loaded();  // after weights or state were written from outside (a checkpoint)

  // Training loss and hits of this segment's microbatches (last stage only), in total and per
  // update: the loss summed over the update's images, and when its last microbatch's loss was
  // known, in seconds since the segment began.
  double loss_sum() const { return loss_sum_; }
  int64_t hits() const { return hits_; }
  int64_t images() const { return images_; }
  const std::vector<double>& update_loss_sums() const { return update_loss_sums_; }
  const std::vector<double>& update_seconds() const { return update_seconds_; }

  void load_batch(int64_t microbatch, int slot) override;
  int64_t forward(int64_t microbatch, int slot, int part) override;
  int64_t backward_data(int64_t microbatch, int slot, int part) override;
  void backward_weights(int64_t microbatch, int slot, int part) override;
  void stash_weights(int64_t microbatch) override;
  std::vector<std::span<const float>> outgoing(schedulers::Direction direction, int slot) override;
  std::vector<std::span<float>> incoming(schedulers::Direction direction, int slot) override;
  std::span<float> hand_over_gradient(int part) override;
  std::span<float> weights(int part) override;
  void optimizer_step(int64_t update, int part, bool averaged, size_t begin, size_t end) override;
  void weights_changed(int part) override;

 private:
  struct Stash {
    std::vector<float> weights;
    std::vector<int64_t> versions;
    uint64_t generation;
  };
  std::span<float> part_of(std::span<float> flat, int part);
  // Gradient buffer 0 is the network's; the others hold sums in flight (each part uses its range).
  std::span<float> grad_buffer(int index) {
    return index == 0 ? net_.grads() : std::span<float>(extra_grads_[size_t(index - 1)]);
  }
  int free_grad_buffer(int part);
  uint64_t random_key(int64_t microbatch) const;
  float lr_of(int64_t update) const;
  // The weights a pass of `microbatch` on `part` computes with: the current ones, or with
  // --staleness predict or local and a delay, their prediction (kept in predicted_).
  layers::ParamsView pass_weights(int64_t microbatch, int part);
  void predict(int part, int64_t delay, float lr);
  void keep_evaluation_point(int64_t update, int part, const float* weights);
  void compensate_delay(int64_t update, int part, std::span<float> grads, size_t begin, size_t end);

  layers::Network net_;
  WorkerOptions options_;
  MinibatchSource* data_;
  Sgd sgd_;
  std::vector<std::vector<float>> extra_grads_;  // allocated as hand-overs need them (delayed: 2)
  std::vector<int> accumulating_;                // per part: the buffer its weight gradients go to
  std::vector<std::deque<int>> handed_over_;     // per part: buffers whose sums are in flight, oldest first
  std::vector<int64_t> versions_;      // updates applied, per part
  uint64_t generation_ = 1;            // changes with every change of weights (kernel caches key on it)
  uint64_t next_generation_ = 2;
  std::map<int64_t, Stash> stashes_;
  StageStaleness staleness_;
  std::vector<float> predicted_;                        // predict: W - d * lr * v, part by part; local: the
                                                        // step from local_grads_
  std::vector<float> local_grads_;                      // local: this replica's newest gradient, kept at hand-over
                                                        // (the average is summed in place over the original)
  std::vector<std::tuple<uint64_t, int64_t, float>> prediction_of_;  // per part: (generation, d, lr) in predicted_
  std::vector<bool> forward_predicted_;                 // per part: the last forward used predicted_
  uint64_t predicted_generation_ = 0;
  std::map<int64_t, std::vector<float>> evaluated_at_;  // dc: per update in flight, W_then
  int64_t epoch_ = 0, first_update_ = 0, updates_before_ = 0;
  std::chrono::steady_clock::time_point segment_start_;
  std::vector<double> update_loss_sums_, update_seconds_;
  float loss_scale_ = 1.0f;
  double loss_sum_ = 0;
  int64_t hits_ = 0, images_ = 0;
};

}  // namespace baton
