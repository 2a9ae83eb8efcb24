// Batches for training and evaluation: a background thread gathers and normalises the next batch
// while the caller trains on the current one. The sample order of an epoch is a permutation that
// depends only on (seed, epoch), so every machine and every replay sees the same batches.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/data/dataset.hpp"

namespace baton {

// One batch, always of the full batch size N so that kernels see a fixed shape.
// images: N×C×H×W, normalised per channel as (x - mean) / stddev; labels: N.
// count: how many of the N samples are real. Only the last batch of an epoch without drop_last has
// count < N; its remaining N - count slots are padding: images all zero, label 0, to be ignored
// (e.g. masked out of the loss and the accuracy).
struct Batch {
  std::vector<float> images;
  std::vector<int32_t> labels;
  int64_t count = 0;
  int64_t index = 0;  // position of the batch within its epoch
  int64_t epoch = 0;
};

// Runs in the worker after normalisation (e.g. data augmentation); what it throws reaches next().
using BatchTransform = std::function<void(Batch&)>;

// The dataset indices of one epoch in order: 0..count-1, or with shuffle a Fisher-Yates permutation
// drawn from (seed, epoch) with counter-based random numbers.
std::vector<int64_t> epoch_order(int64_t count, bool shuffle, uint64_t seed, int64_t epoch);

class BatchLoader {
 public:
  // The dataset must outlive the loader. batch_size >= 1, and with drop_last (training: the last
  // partial batch is dropped) at most the dataset size; without drop_last (evaluation) the last
  // partial batch is returned padded, see Batch.
  BatchLoader(const Dataset& dataset, const Normalization& normalization, int64_t batch_size, bool shuffle,
              bool drop_last, uint64_t seed, BatchTransform transform = {});
  ~BatchLoader();  // stops and joins the worker, also in the middle of an epoch
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batch_size() const { return batch_size_; }
  int64_t batches_per_epoch() const { return batches_per_epoch_; }

  // Begins an epoch (abandoning what is left of the previous one); the worker starts on batch
  // `first` (a resumed run starts where its checkpoint was taken).
  void start_epoch(int64_t epoch, int64_t first = 0);

  // The next batch of the epoch into out (its storage is recycled); false once the epoch is over.
  // Rethrows an exception raised while the worker assembled this batch.
  bool next(Batch& out);

 private:
  struct Job {
    uint64_t generation;
    int64_t epoch;
    int64_t index;
    std::shared_ptr<const std::vector<int64_t>> order;
  };

  void worker_loop();
  bool has_work() const;
  void assemble(const Job& job, Batch& batch) const;

  const Dataset& dataset_;
  std::vector<float> mean_, inv_stddev_;  // per channel
  const int64_t batch_size_;
  const bool shuffle_;
  const bool drop_last_;
  const uint64_t seed_;
  const BatchTransform transform_;
  int64_t batches_per_epoch_ = 0;

  // Guarded by mutex_. A generation is one start_epoch call; a batch built for an older one is
  // thrown away. Three Batch buffers circulate: the caller's, ready_ and the worker's own.
  std::mutex mutex_;
  std::condition_variable work_cv_;   // the worker waits here for work or room in ready_
  std::condition_variable ready_cv_;  // next() waits here for ready_
  uint64_t generation_ = 0;
  int64_t epoch_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;
  int64_t produced_ = 0;
  int64_t consumed_ = 0;
  bool ready_full_ = false;
  Batch ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread worker_;  // last: starts after everything above is initialised
};

}  // namespace baton
