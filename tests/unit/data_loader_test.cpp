// Tests of the prefetching BatchLoader: shuffled epochs visit every sample once in a (seed, epoch)
// permutation, the last batch is padded or dropped, normalisation gives mean 0 and std 1, stale
// batches of an abandoned epoch never leak, worker errors reach next(), and destruction never hangs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/data/data_loader.hpp"
#include "runtime/base/error.hpp"

namespace baton {
namespace {

constexpr int64_t kElements = 6;  // images of 2x1x3

// Sample i has pixel values 1000*i + e, so a batch slot tells which sample it holds; label i % 5.
Dataset indexed_dataset(int64_t count) {
  Dataset data{.name = "indexed", .image_dims = {2, 1, 3}, .classes = 5};
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t e = 0; e < kElements; ++e) data.images.push_back(static_cast<float>(1000 * i + e));
    data.labels.push_back(static_cast<int32_t>(i % 5));
  }
  return data;
}

const Normalization kIdentity{{0.0f, 0.0f}, {1.0f, 1.0f}};

struct Seen {
  std::vector<int64_t> samples;  // in the order the real slots were delivered
  std::vector<int64_t> counts;   // Batch::count of each batch
};

// Runs one epoch of an indexed_dataset loader and checks every slot's pixels and label as it goes.
Seen run_epoch(BatchLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  Seen seen;
  Batch batch;
  while (loader.next(batch)) {
    EXPECT_EQ(batch.index, static_cast<int64_t>(seen.counts.size()));
    EXPECT_EQ(batch.epoch, epoch);
    EXPECT_EQ(batch.images.size(), static_cast<size_t>(loader.batch_size() * kElements));
    EXPECT_EQ(batch.labels.size(), static_cast<size_t>(loader.batch_size()));
    for (int64_t slot = 0; slot < loader.batch_size(); ++slot) {
      const float* pixels = batch.images.data() + slot * kElements;
      const int64_t sample = slot < batch.count ? static_cast<int64_t>(pixels[0]) / 1000 : -1;
      for (int64_t e = 0; e < kElements; ++e)
        EXPECT_EQ(pixels[e], sample < 0 ? 0.0f : static_cast<float>(1000 * sample + e)) << "slot " << slot;
      EXPECT_EQ(batch.labels[slot], sample < 0 ? 0 : sample % 5) << "slot " << slot;
      if (sample >= 0) seen.samples.push_back(sample);
    }
    seen.counts.push_back(batch.count);
  }
  return seen;
}

std::vector<int64_t> iota_vector(int64_t count) {
  std::vector<int64_t> values(count);
  std::iota(values.begin(), values.end(), int64_t{0});
  return values;
}

TEST(EpochOrder, IsASeededPermutation) {
  std::vector<int64_t> order = epoch_order(1000, true, 7, 0);
  EXPECT_EQ(order, epoch_order(1000, true, 7, 0));
  EXPECT_NE(order, epoch_order(1000, true, 7, 1));
  EXPECT_NE(order, epoch_order(1000, true, 8, 0));
  EXPECT_NE(order, iota_vector(1000));
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, iota_vector(1000));
  EXPECT_EQ(epoch_order(1000, false, 7, 3), iota_vector(1000));
}

TEST(BatchLoader, ShuffledEpochVisitsEverySampleOnceAndPadsTheLastBatch) {
  Dataset data = indexed_dataset(103);
  BatchLoader loader(data, kIdentity, 10, /*shuffle=*/true, /*drop_last=*/false, 11);
  ASSERT_EQ(loader.batches_per_epoch(), 11);
  Seen seen = run_epoch(loader, 0);
  EXPECT_EQ(seen.samples, epoch_order(103, true, 11, 0));
  std::vector<int64_t> expected_counts(10, 10);
  expected_counts.push_back(3);
  EXPECT_EQ(seen.counts, expected_counts);
  std::sort(seen.samples.begin(), seen.samples.end());
  EXPECT_EQ(seen.samples, iota_vector(103));
}

TEST(BatchLoader, EpochsDifferAndRepeatForTheSameSeed) {
  Dataset data = indexed_dataset(50);
  BatchLoader first(data, kIdentity, 8, true, false, 3), second(data, kIdentity, 8, true, false, 3);
  std::vector<int64_t> epoch0 = run_epoch(first, 0).samples, epoch1 = run_epoch(first, 1).samples;
  EXPECT_NE(epoch0, epoch1);
  EXPECT_EQ(run_epoch(second, 1).samples, epoch1);
  EXPECT_EQ(run_epoch(second, 0).samples, epoch0);
  BatchLoader other_seed(data, kIdentity, 8, true, false, 4);
  EXPECT_NE(run_epoch(other_seed, 0).samples, epoch0);
}

TEST(BatchLoader, UnshuffledEpochKeepsTheDatasetOrder) {
  Dataset data = indexed_dataset(9);
  BatchLoader loader(data, kIdentity, 4, false, false, 0);
  EXPECT_EQ(run_epoch(loader, 5).samples, iota_vector(9));
}

TEST(BatchLoader, DropLastDeliversOnlyFullBatches) {
  Dataset data = indexed_dataset(103);
  BatchLoader loader(data, kIdentity, 10, true, /*drop_last=*/true, 11);
  ASSERT_EQ(loader.batches_per_epoch(), 10);
  Seen seen = run_epoch(loader, 2);
  EXPECT_EQ(seen.counts, std::vector<int64_t>(10, 10));
  std::vector<int64_t> order = epoch_order(103, true, 11, 2);
  EXPECT_EQ(seen.samples, std::vector<int64_t>(order.begin(), order.begin() + 100));
}

TEST(BatchLoader, BatchLargerThanAnEvaluationSetIsOnePaddedBatch) {
  Dataset data = indexed_dataset(5);
  BatchLoader loader(data, kIdentity, 8, false, false, 0);
  ASSERT_EQ(loader.batches_per_epoch(), 1);
  Seen seen = run_epoch(loader, 0);
  EXPECT_EQ(seen.counts, std::vector<int64_t>{5});
}

TEST(BatchLoader, NormalisedTrainingSetHasZeroMeanAndUnitStd) {
  Dataset data = make_synthetic({3, 4, 4}, 10, 500, 9, "train");
  Normalization stats = channel_statistics(data);
  BatchLoader loader(data, stats, 64, true, false, 1);
  loader.start_epoch(0);
  std::vector<double> sum(3, 0.0), sum_squares(3, 0.0);
  Batch batch;
  while (loader.next(batch)) {
    for (int64_t i = 0; i < batch.count * 48; ++i) {
      sum[i % 48 / 16] += batch.images[i];
      sum_squares[i % 48 / 16] += batch.images[i] * batch.images[i];
    }
  }
  for (int c = 0; c < 3; ++c) {
    double mean = sum[c] / (500 * 16);
    EXPECT_NEAR(mean, 0.0, 1e-4) << "channel " << c;
    EXPECT_NEAR(std::sqrt(sum_squares[c] / (500 * 16) - mean * mean), 1.0, 1e-3) << "channel " << c;
  }
}

TEST(BatchLoader, NextReturnsFalseAfterTheEpochUntilTheNextStarts) {
  Dataset data = indexed_dataset(6);
  BatchLoader loader(data, kIdentity, 3, true, true, 0);
  run_epoch(loader, 0);
  Batch batch;
  EXPECT_FALSE(loader.next(batch));
  EXPECT_FALSE(loader.next(batch));
  EXPECT_EQ(run_epoch(loader, 1).counts, (std::vector<int64_t>{3, 3}));
}

TEST(BatchLoader, RestartedEpochNeverDeliversStaleBatches) {
  Dataset data = indexed_dataset(200);
  BatchLoader loader(data, kIdentity, 7, true, false, 21);
  loader.start_epoch(0);
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  ASSERT_TRUE(loader.next(batch));
  EXPECT_EQ(run_epoch(loader, 1).samples, epoch_order(200, true, 21, 1));
}

std::string loader_error(const Dataset& data, const Normalization& normalization, int64_t batch_size, bool drop_last) {
  try {
    BatchLoader loader(data, normalization, batch_size, true, drop_last, 0);
    Batch batch;
    loader.next(batch);
  } catch (const Error& error) {
    return error.message();
  }
  return "no error";
}

TEST(BatchLoader, BadSettingsAreOneSentence) {
  Dataset data = indexed_dataset(10);
  EXPECT_NE(loader_error(data, kIdentity, 0, false).find("batch size 0 is not allowed"), std::string::npos);
  EXPECT_NE(loader_error(data, kIdentity, -3, true).find("at least 1"), std::string::npos);
  std::string too_big = loader_error(data, kIdentity, 11, true);
  EXPECT_NE(too_big.find("larger than the 10 samples of 'indexed'"), std::string::npos) << too_big;
  EXPECT_NE(too_big.find("at most 10"), std::string::npos) << too_big;
  std::string channels = loader_error(data, Normalization{{0.0f}, {1.0f}}, 2, false);
  EXPECT_NE(channels.find("have 2 channels"), std::string::npos) << channels;
  std::string zero_std = loader_error(data, Normalization{{0.0f, 0.0f}, {1.0f, 0.0f}}, 2, false);
  EXPECT_NE(zero_std.find("standard deviation 0"), std::string::npos) << zero_std;
  std::string unstarted = loader_error(data, kIdentity, 2, false);
  EXPECT_NE(unstarted.find("before start_epoch"), std::string::npos) << unstarted;
}

TEST(BatchLoader, WorkerErrorsReachNextInOrder) {
  Dataset data = indexed_dataset(20);
  int64_t transformed = 0;
  BatchLoader loader(data, kIdentity, 4, false, false, 0, [&](Batch& batch) {
    BATON_CHECK(batch.index != 2, "augmentation failed on batch " << batch.index);
    batch.labels[0] = 4;
    ++transformed;
  });
  for (int round = 0; round < 2; ++round) {
    loader.start_epoch(round);
    Batch batch;
    ASSERT_TRUE(loader.next(batch));
    EXPECT_EQ(batch.labels[0], 4) << "the transform ran on the batch";
    ASSERT_TRUE(loader.next(batch));
    EXPECT_EQ(batch.index, 1);
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        loader.next(batch);
        ADD_FAILURE() << "next() should rethrow the worker's error";
      } catch (const Error& error) {
        EXPECT_EQ(error.message(), "augmentation failed on batch 2");
      }
    }
  }
  EXPECT_GE(transformed, 4);
}

// A hang here fails the test by its ctest TIMEOUT.
TEST(BatchLoader, DestructionMidEpochDoesNotHang) {
  Dataset data = indexed_dataset(1000);
  for (int taken = 0; taken < 4; ++taken) {
    BatchLoader loader(data, kIdentity, 2, true, true, 0);
    if (taken == 0) continue;  // never started
    loader.start_epoch(0);
    Batch batch;
    for (int i = 1; i < taken; ++i) ASSERT_TRUE(loader.next(batch));
  }
}

}  // namespace
}  // namespace baton
