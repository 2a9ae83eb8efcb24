// Implementation of NetworkWorker and LoaderSource.
#include "runtime/app/network_worker.hpp"

#include <algorithm>
#include <cmath>

#include "runtime/base/error.hpp"
#include "runtime/base/rng.hpp"

namespace baton {

using schedulers::Direction;

void LoaderSource::start_epoch(int64_t epoch, int64_t first, std::function<void(int64_t)> on_done) {
  cache_.clear();
  loaded_ = finished_ = first;
  on_done_ = std::move(on_done);
  loader_.start_epoch(epoch, first);
}

const Batch& LoaderSource::minibatch(int64_t update) {
  while (loaded_ <= update) {
    Batch batch;
    BATON_CHECK(loader_.next(batch), "the schedule asked for minibatch " << update << " but the epoch has only "
                                                                        << loaded_);
    cache_[loaded_++] = {std::move(batch), 0};
  }
  auto it = cache_.find(update);
  BATON_CHECK(it != cache_.end(), "minibatch " << update << " was already used by all its readers");
  return it->second.first;
}

void LoaderSource::done_with(int64_t update) {
  auto it = cache_.find(update);
  if (it == cache_.end() || ++it->second.second < readers_) return;
  cache_.erase(it);
  if (on_done_) on_done_(++finished_);
}

NetworkWorker::NetworkWorker(const layers::ModelSpec& model, int first, int last, const WorkerOptions& options,
                             MinibatchSource* data)
    : net_(model, first, last, options.network), options_(options), data_(data),
      sgd_(size_t(net_.param_count()), options.sgd), accumulating_(options.parts.size(), 0),
      handed_over_(options.parts.size()),
      versions_(options.parts.size(), 0), prediction_of_(options.parts.size()),
      forward_predicted_(options.parts.size(), false) {
  // Each replica's gradient is the mean over its share of the minibatch; averaging over replicas
  // then gives the mean over the whole minibatch.
  const int64_t share = options.network.batch * options.microbatches;
  loss_scale_ = 1.0f / float(share);
}

void NetworkWorker::begin_segment(const Segment& segment, const StageStaleness& staleness) {
  epoch_ = segment.epoch;
  first_update_ = segment.first;
  updates_before_ = segment.updates_before;
  staleness_ = staleness;
  sgd_.set_momentum(std::max(0.0f, options_.sgd.momentum - staleness.momentum_cut));
  if (staleness.predict || staleness.local) predicted_.resize(net_.weights().size());
  if (staleness.local) local_grads_.resize(net_.weights().size());
  std::fill(prediction_of_.begin(), prediction_of_.end(), std::tuple<uint64_t, int64_t, float>{});
  std::fill(versions_.begin(), versions_.end(), 0);
  stashes_.clear();
  evaluated_at_.clear();
  loss_sum_ = 0;
  hits_ = images_ = 0;
  update_loss_sums_.assign(size_t(segment.updates), 0.0);
  update_seconds_.assign(size_t(segment.updates), 0.0);
  segment_start_ = std::chrono::steady_clock::now();
}

void NetworkWorker::weights_loaded() {
  net_.weights_changed();
  weights_changed(0);
}

// Dropout masks are keyed by the microbatch's number within its epoch, whatever the segments.
uint64_t NetworkWorker::random_key(int64_t microbatch) const {
  const int64_t in_epoch = first_update_ * options_.microbatches + microbatch;
  return mix_keys(mix_keys(uint64_t(epoch_), uint64_t(in_epoch)), uint64_t(options_.replica));
}

// Microbatch m of update u is rows [replica share + m * b, + b) of minibatch u.
void NetworkWorker::load_batch(int64_t microbatch, int slot) {
  const int64_t update = microbatch / options_.microbatches, within = microbatch % options_.microbatches;
  const Batch& batch = data_->minibatch(first_update_ + update);
  const int64_t b = net_.batch();
  const int64_t first_row = (int64_t(options_.replica) * options_.microbatches + within) * b;
  BATON_CHECK(first_row + b <= int64_t(batch.labels.size()),
              "minibatch " << update << " holds " << batch.labels.size() << " images, too few for microbatch "
                           << microbatch);
  if (net_.entering().front() == layers::kImages) {
    Tensor& images = net_.input(slot, 0);
    const int64_t per_image = images.numel() / b;
    std::copy_n(batch.images.begin() + first_row * per_image, images.numel(), images.data());
  }
  if (net_.has_loss()) std::copy_n(batch.labels.begin() + first_row, b, net_.labels(slot));
  data_->done_with(first_update_ + update);
}

float NetworkWorker::lr_of(int64_t update) const {
  const int64_t step = updates_before_ + update, ramp = options_.schedule.staleness_warmup_steps;
  const float lr = staleness_.lr_scale * learning_rate(options_.schedule, step);
  return staleness_.warmup && step < ramp ? lr * float(step + 1) / float(ramp) : lr;
}

layers::ParamsView NetworkWorker::pass_weights(int64_t microbatch, int part) {
  const int64_t update = microbatch / options_.microbatches, delay = update - versions_[size_t(part)];
  if (!(staleness_.predict || staleness_.local) || delay <= 0) return {net_.weights().data(), generation_};
  // predict extrapolates at the pass's rate; local takes the step of the update it waits for
  const float lr = lr_of(staleness_.local ? versions_[size_t(part)] : update);
  auto& made_of = prediction_of_[size_t(part)];
  if (made_of != std::tuple{generation_, delay, lr}) {
    predict(part, delay, lr);
    made_of = {generation_, delay, lr};
    predicted_generation_ = next_generation_++;
  }
  return {predicted_.data(), predicted_generation_};
}

void NetworkWorker::predict(int part, int64_t delay, float lr) {
  if (staleness_.local) {
    BATON_CHECK(delay == 1, "--staleness local predicts one update ahead, but a pass of stage "
                                << options_.stage << " is " << delay << " updates behind");
    auto [begin, end] = net_.param_range(options_.parts[size_t(part)]);
    sgd_.preview(net_.weights(), local_grads_, lr, predicted_, size_t(begin), size_t(end));
    return;
  }
  const float step = float(delay) * lr;
  std::span<const float> w = weights(part), v = momentum(part);
  std::span<float> p = part_of(predicted_, part);
  for (size_t i = 0; i < p.size(); ++i) p[i] = w[i] - step * v[i];
}

// dc: the weights update u's gradient is computed at, kept until the update is applied.
void NetworkWorker::keep_evaluation_point(int64_t update, int part, const float* weights) {
  std::vector<float>& kept = evaluated_at_[update];
  kept.resize(net_.weights().size());
  auto [begin, end] = net_.param_range(options_.parts[size_t(part)]);
  std::copy(weights + begin, weights + end, kept.begin() + begin);
}

// dc (DC-ASGD): g + lambda * g * g * (W_now - W_then) on elements [begin, end) of the stage.
void NetworkWorker::compensate_delay(int64_t update, int part, std::span<float> grads, size_t begin, size_t end) {
  auto then = evaluated_at_.find(update);
  BATON_CHECK(then != evaluated_at_.end(), "no evaluation point was kept for update " << update);
  const float lambda = staleness_.dc_lambda;
  const float* w = net_.weights().data();
  const float* w_then = then->second.data();
  for (size_t i = begin; i < end; ++i) grads[i] += lambda * grads[i] * grads[i] * (w[i] - w_then[i]);
  if (part + 1 == parts()) evaluated_at_.erase(then);
}

int64_t NetworkWorker::forward(int64_t microbatch, int slot, int part) {
  const layers::ParamsView weights = pass_weights(microbatch, part);
  forward_predicted_[size_t(part)] = weights.data != net_.weights().data();
  if (staleness_.dc_lambda > 0 && microbatch % options_.microbatches == 0)
    keep_evaluation_point(microbatch / options_.microbatches, part, weights.data);
  net_.forward(slot, layers::Phase::train, random_key(microbatch), weights, options_.parts[size_t(part)]);
  if (net_.has_loss() && part + 1 == int(options_.parts.size())) {
    const double loss = net_.loss_sum(slot, net_.batch());
    const size_t update = size_t(microbatch / options_.microbatches);
    BATON_CHECK(std::isfinite(loss), "training diverged: the loss of update "
                                         << updates_before_ + int64_t(update) + 1 << " (epoch " << epoch_ << ") is "
                                         << loss << " at learning rate "
                                         << lr_of(int64_t(update))
                                         << "; lower --lr or --momentum, or add --warmup-epochs");
    loss_sum_ += loss;
    hits_ += net_.correct(slot, net_.batch());
    images_ += net_.batch();
    update_loss_sums_[update] += loss;
    update_seconds_[update] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - segment_start_).count();
  }
  return versions_[size_t(part)];
}

int64_t NetworkWorker::backward_data(int64_t microbatch, int slot, int part) {
  auto stash = stashes_.find(microbatch);
  const bool stashed = stash != stashes_.end();
  const layers::ParamsView weights = stashed ? layers::ParamsView{stash->second.weights.data(), stash->second.generation}
                                             : pass_weights(microbatch, part);
  const int64_t version = stashed ? stash->second.versions[size_t(part)] : versions_[size_t(part)];
  net_.backward_data(slot, weights, loss_scale_, options_.parts[size_t(part)]);
  if (part == 0 && stashed) stashes_.erase(stash);  // parts go backward last first
  return version;
}

void NetworkWorker::backward_weights(int64_t /*microbatch*/, int slot, int part) {
  net_.backward_weights(slot, grad_buffer(accumulating_[size_t(part)]).data(), options_.parts[size_t(part)]);
}

// The weights the microbatch's forward used, part by part (predicted ones where it predicted).
void NetworkWorker::stash_weights(int64_t microbatch) {
  Stash stash{{net_.weights().begin(), net_.weights().end()}, versions_, next_generation_++};
  for (int part = 0; part < parts(); ++part) {
    if (!forward_predicted_[size_t(part)]) continue;
    std::span<const float> predicted = part_of(predicted_, part);
    std::copy(predicted.begin(), predicted.end(), part_of(stash.weights, part).begin());
  }
  stashes_[microbatch] = std::move(stash);
}

std::vector<std::span<const float>> NetworkWorker::outgoing(Direction direction, int slot) {
  std::vector<std::span<const float>> tensors;
  if (direction == Direction::activation) {
    for (size_t i = 0; i < net_.leaving().size(); ++i) {
      const Tensor& t = net_.output(slot, i);
      tensors.emplace_back(t.data(), size_t(t.numel()));
    }
  } else {
    for (size_t i = 0; i < net_.entering().size(); ++i) {
      const Tensor& t = net_.input_grad(slot, i);
      tensors.emplace_back(t.data(), size_t(t.numel()));
    }
  }
  return tensors;
}

std::vector<std::span<float>> NetworkWorker::incoming(Direction direction, int slot) {
  std::vector<std::span<float>> tensors;
  const size_t count = direction == Direction::activation ? net_.entering().size() : net_.leaving().size();
  for (size_t i = 0; i < count; ++i) {
    Tensor& t = direction == Direction::activation ? net_.input(slot, i) : net_.output_grad(slot, i);
    tensors.emplace_back(t.data(), size_t(t.numel()));
  }
  return tensors;
}

std::span<float> NetworkWorker::part_of(std::span<float> flat, int part) {
  auto [begin, end] = net_.param_range(options_.parts[size_t(part)]);
  return flat.subspan(size_t(begin), size_t(end - begin));
}

// A buffer whose range of `part` is neither accumulating nor in flight: zero, because the step that
// applied its last sum cleared it. A new one when all are busy.
int NetworkWorker::free_grad_buffer(int part) {
  const std::deque<int>& busy = handed_over_[size_t(part)];
  for (int index = 0; index <= int(extra_grads_.size()); ++index)
    if (index != accumulating_[size_t(part)] && std::find(busy.begin(), busy.end(), index) == busy.end()) return index;
  extra_grads_.emplace_back(size_t(net_.param_count()), 0.0f);
  return int(extra_grads_.size());
}

std::span<float> NetworkWorker::hand_over_gradient(int part) {
  const int handed = accumulating_[size_t(part)];
  if (staleness_.local) {
    std::span<const float> local = part_of(grad_buffer(handed), part);
    std::copy(local.begin(), local.end(), part_of(local_grads_, part).begin());
    prediction_of_[size_t(part)] = {};
  }
  handed_over_[size_t(part)].push_back(handed);
  accumulating_[size_t(part)] = free_grad_buffer(part);
  return part_of(grad_buffer(handed), part);
}

std::span<float> NetworkWorker::weights(int part) { return part_of(net_.weights(), part); }

void NetworkWorker::optimizer_step(int64_t update, int part, bool averaged, size_t begin, size_t end) {
  const size_t offset = size_t(net_.param_range(options_.parts[size_t(part)]).first);
  std::deque<int>& handed = handed_over_[size_t(part)];
  BATON_CHECK(!averaged || !handed.empty(), "update " << update << " of bucket " << part << " has no sum to apply");
  const int index = averaged ? handed.front() : accumulating_[size_t(part)];  // the oldest sum, or the local gradient
  if (averaged) handed.pop_front();
  std::span<float> grads = grad_buffer(index);
  float divisor = averaged ? float(options_.replicas) : 1.0f;
  if (staleness_.dc_lambda > 0) {  // the correction reads the mean itself
    for (size_t i = offset + begin; i < offset + end; ++i) grads[i] /= divisor;
    divisor = 1.0f;
    compensate_delay(update, part, grads, offset + begin, offset + end);
  }
  sgd_.step_and_clear(net_.weights(), grads, lr_of(update), offset + begin, offset + end, divisor);
  std::span<float> whole = part_of(grads, part);  // sharded: the other replicas' shards were summed there
  std::fill(whole.begin(), whole.begin() + long(begin), 0.0f);
  std::fill(whole.begin() + long(end), whole.end(), 0.0f);
  ++versions_[size_t(part)];
  weights_changed(part);
}

void NetworkWorker::weights_changed(int /*part*/) { generation_ = next_generation_++; }

}  // namespace baton
