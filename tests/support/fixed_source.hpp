// A MinibatchSource of fixed synthetic minibatches (one per update), identical on every rank that
// builds it, for comparing runs of a configuration exactly.
#pragma once

#include "layers/model_spec.hpp"
#include "runtime/app/cli.hpp"
#include "runtime/app/network_worker.hpp"

namespace baton::test {

// A configuration for comparing runs: small gradient buckets (so overlap and sharded averaging
// work bucket by bucket) and the plain staleness rule.
ParallelConfig parallel_config(int stages, int replicas, const std::string& pipeline, int microbatches = 1,
                               const std::string& dp = "sync", bool split_backward = false);

class FixedSource final : public MinibatchSource {
 public:
  FixedSource(const layers::ModelSpec& model, int64_t batch, int64_t steps);
  const Batch& minibatch(int64_t update) override { return batches_.at(size_t(update)); }
  void done_with(int64_t) override {}
  const Batch& at(int64_t update) const { return batches_.at(size_t(update)); }

 private:
  std::vector<Batch> batches_;
};

}  // namespace baton::test
