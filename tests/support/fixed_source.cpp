// Implementation of FixedSource: normal images, labels cycling through the classes.
#include "tests/support/fixed_source.hpp"

#include "tests/support/compare.hpp"

namespace baton::test {

ParallelConfig parallel_config(int stages, int replicas, const std::string& pipeline, int microbatches,
                               const std::string& dp, bool split_backward) {
  ParallelConfig p;
  p.stages = stages;
  p.replicas = replicas;
  p.pipeline = pipeline;
  p.microbatches = microbatches;
  p.dp = dp;
  p.split_backward = split_backward;
  p.bucket_mb = 0.01;
  p.staleness = "none";
  return p;
}

FixedSource::FixedSource(const layers::ModelSpec& model, int64_t batch, int64_t steps) {
  for (int64_t t = 0; t < steps; ++t) {
    Batch b;
    b.count = batch;
    b.images = random_values(batch * element_count(model.input), uint64_t(100 + t));
    for (int64_t i = 0; i < batch; ++i) b.labels.push_back(int32_t((i * 7 + t) % model.classes));
    batches_.push_back(std::move(b));
  }
}

}  // namespace baton::test
