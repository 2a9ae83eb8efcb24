// The prefetching batch loader: one worker thread per loader gathers and normalises batch k+1 while
// the caller holds batch k (double buffering behind a mutex and two condition variables); batches of
// an abandoned epoch are discarded by generation, and worker exceptions travel to next().
#include "runtime/data/data_loader.hpp"

#include <algorithm>
#include <numeric>
#include <utility>

#include "runtime/base/error.hpp"
#include "runtime/base/rng.hpp"

namespace baton {
namespace {

void check_loader_inputs(const Dataset& dataset, const Normalization& normalization, int64_t batch_size,
                         bool drop_last) {
  BATON_CHECK(batch_size >= 1, "batch size " << batch_size << " is not allowed; pass a batch size of at least 1");
  BATON_CHECK(!drop_last || batch_size <= dataset.size(),
              "batch size " << batch_size << " is larger than the " << dataset.size() << " samples of '"
                            << dataset.name << "', so dropping the last partial batch leaves no batch at all; "
                            << "pass a batch size of at most " << dataset.size());
  BATON_CHECK(dataset.image_dims.size() == 3 && dataset.image_elements() > 0 &&
                  static_cast<int64_t>(dataset.images.size()) == dataset.size() * dataset.image_elements(),
              "data set '" << dataset.name << "' holds " << dataset.images.size() << " pixel values for "
                           << dataset.size() << " labels of " << to_string(dataset.image_dims)
                           << " images; build it with load_data or the readers in runtime/data/dataset.hpp");
  const size_t channels = static_cast<size_t>(dataset.image_dims[0]);
  BATON_CHECK(normalization.mean.size() == channels && normalization.stddev.size() == channels,
              "the normalisation has " << normalization.mean.size() << " means and " << normalization.stddev.size()
                                       << " standard deviations but the images of '" << dataset.name << "' have "
                                       << channels << " channels; compute it with channel_statistics on the "
                                       << "training set of the same data");
  for (float stddev : normalization.stddev)
    BATON_CHECK(stddev > 0.0f, "the normalisation has standard deviation " << stddev
                                   << ", which would divide by zero or flip signs; use channel_statistics");
}

}  // namespace

std::vector<int64_t> epoch_order(int64_t count, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle) return order;
  const uint64_t key = mix_keys(seed, static_cast<uint64_t>(epoch));
  for (int64_t i = count - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(mix_keys(key, static_cast<uint64_t>(i)) % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

BatchLoader::BatchLoader(const Dataset& dataset, const Normalization& normalization, int64_t batch_size,
                         bool shuffle, bool drop_last, uint64_t seed, BatchTransform transform)
    : dataset_(dataset),
      batch_size_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed),
      transform_(std::move(transform)) {
  check_loader_inputs(dataset, normalization, batch_size, drop_last);
  mean_ = normalization.mean;
  for (float stddev : normalization.stddev) inv_stddev_.push_back(1.0f / stddev);
  batches_per_epoch_ = drop_last_ ? dataset.size() / batch_size : (dataset.size() + batch_size - 1) / batch_size;
  worker_ = std::thread(&BatchLoader::worker_loop, this);
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  worker_.join();
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first) {
  BATON_CHECK(first >= 0 && first <= batches_per_epoch_,
              "an epoch of " << batches_per_epoch_ << " batches cannot start at batch " << first);
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(dataset_.size(), shuffle_, seed_, epoch));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    epoch_ = epoch;
    order_ = std::move(order);
    produced_ = first;
    consumed_ = first;
    ready_full_ = false;
    error_ = nullptr;
  }
  work_cv_.notify_all();
}

bool BatchLoader::next(Batch& out) {
  std::unique_lock<std::mutex> lock(mutex_);
  BATON_CHECK(order_ != nullptr, "BatchLoader::next was called before start_epoch; start an epoch first");
  if (consumed_ >= batches_per_epoch_) return false;
  ready_cv_.wait(lock, [&] { return ready_full_ || error_ != nullptr; });
  if (!ready_full_) std::rethrow_exception(error_);
  std::swap(out, ready_);
  ready_full_ = false;
  ++consumed_;
  lock.unlock();
  work_cv_.notify_all();
  return true;
}

bool BatchLoader::has_work() const {
  return order_ != nullptr && error_ == nullptr && produced_ < batches_per_epoch_;
}

void BatchLoader::worker_loop() {
  Batch working;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || has_work(); });
    if (stop_) return;
    const Job job{generation_, epoch_, produced_, order_};
    lock.unlock();
    std::exception_ptr error;
    try {
      assemble(job, working);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    work_cv_.wait(lock, [&] { return stop_ || generation_ != job.generation || !ready_full_; });
    if (stop_) return;
    if (generation_ != job.generation) continue;  // start_epoch abandoned this epoch
    if (error) {
      error_ = error;
    } else {
      std::swap(working, ready_);
      ready_full_ = true;
      ++produced_;
    }
    ready_cv_.notify_all();
  }
}

void BatchLoader::assemble(const Job& job, Batch& batch) const {
  const int64_t elements = dataset_.image_elements();
  const int64_t channels = dataset_.image_dims[0];
  const int64_t plane = elements / channels;
  const int64_t first = job.index * batch_size_;
  const int64_t real = std::min(batch_size_, dataset_.size() - first);
  batch.images.resize(static_cast<size_t>(batch_size_ * elements));
  batch.labels.assign(static_cast<size_t>(batch_size_), 0);
  batch.count = real;
  batch.index = job.index;
  batch.epoch = job.epoch;
  for (int64_t slot = 0; slot < real; ++slot) {
    const int64_t sample = (*job.order)[first + slot];
    const float* source = dataset_.images.data() + sample * elements;
    float* target = batch.images.data() + slot * elements;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t p = 0; p < plane; ++p) target[c * plane + p] = (source[c * plane + p] - mean_[c]) * inv_stddev_[c];
    batch.labels[slot] = dataset_.labels[sample];
  }
  std::fill(batch.images.begin() + real * elements, batch.images.end(), 0.0f);
  if (transform_) transform_(batch);
}

}  // namespace baton
