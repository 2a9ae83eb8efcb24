// Every mode over MPI ranks against the one-process emulation of the same configuration: each
// rank compares its own weights with those of its twin in the emulation, and the epoch's loss on
// rank 0. Bitwise, except averaging over 4 replicas, whose sum Open MPI orders differently from
// the emulation's replica order (a relative tolerance of 1e-6, printed). Results are combined
// over ranks, so a mismatch on any rank fails every rank's test.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>

#include "comm/topology.hpp"
#include "layers/zoo.hpp"
#include "runtime/app/distributed_run.hpp"
#include "runtime/app/local_run.hpp"
#include "tests/support/backends.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/fixed_source.hpp"

namespace baton {
namespace {

constexpr int64_t kBatch = 8;
constexpr int64_t kSteps = 6;

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// True on every rank only if `ok` holds on every rank.
bool on_all_ranks(bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

struct Case {
  std::string name;
  std::string model;
  Dims input;
  ParallelConfig parallel;
  int64_t epochs = 1;  // more than one where the mode changes between epochs (hybrid)
};

// Trains `epochs` epochs of kSteps updates and returns their summed totals.
EpochTotals train(Run& run, int64_t epochs) {
  EpochTotals sum;
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    const EpochTotals totals = run.train_segment(Segment{epoch, epochs, 0, kSteps, (epoch - 1) * kSteps}, nullptr).totals;
    sum.loss += totals.loss;
    sum.images += totals.images;
  }
  return sum;
}

ParallelConfig config(int stages, int replicas, const std::string& pipeline, int microbatches = 1,
                      const std::string& dp = "sync") {
  return test::parallel_config(stages, replicas, pipeline, microbatches, dp);
}

WorkerOptions common_options() {
  WorkerOptions o;
  o.network = layers::NetworkOptions{test::mode_backend(), 1, 1, 3};
  o.sgd = SgdOptions{0.9f, 1e-4f, false};
  o.schedule.base = 0.05f;
  o.schedule.staleness_warmup_steps = 4;  // --staleness warmup ramps within the kSteps updates
  return o;
}

class MpiEquivalence : public ::testing::TestWithParam<Case> {};

TEST_P(MpiEquivalence, EqualsTheOneProcessEmulation) {
  const Case& c = GetParam();
  BATON_SKIP_UNLESS_AVAILABLE(test::mode_backend());
  const int ranks = c.parallel.stages * c.parallel.replicas;
  if (ranks != world_size()) GTEST_SKIP() << c.name << " needs " << ranks << " ranks";
  layers::ModelSpec model = layers::build_model(c.model, c.input, 10);
  RunPlan plan = plan_run(model, c.parallel, kBatch, c.epochs, layers::node_costs(model));
  for (const std::string progress : {"poll", "thread"}) {
    SCOPED_TRACE(c.name + ", progress " + progress);
    ParallelConfig mpi = c.parallel;
    mpi.progress = progress;
    test::FixedSource data(model, kBatch, kSteps * c.epochs);
    comm::Topology topology(mpi.stages, mpi.replicas);
    DistributedRun distributed(model, plan, mpi, common_options(), &data, topology, comm::parse_progress(progress), 0);
    const EpochTotals mpi_totals = train(distributed, c.epochs);

    ParallelConfig emulated = c.parallel;
    emulated.emulate = true;
    test::FixedSource twin_data(model, kBatch, kSteps * c.epochs);
    LocalRun local(model, plan, emulated, common_options(), &twin_data);
    const EpochTotals local_totals = train(local, c.epochs);

    std::span<float> mine = distributed.worker().network().weights();
    std::span<float> twin = local.worker(topology.rank()).network().weights();
    const std::vector<float> a(mine.begin(), mine.end()), b(twin.begin(), twin.end());
    const double tolerance = c.parallel.replicas > 2 ? 1e-6 : 0.0;
    test::DiffStats diff = test::compare("rank " + std::to_string(topology.rank()) + " weights", a, b);
    const bool weights_ok = diff.same_size && diff.max_abs <= tolerance * diff.scale;
    EXPECT_TRUE(on_all_ranks(weights_ok)) << "weights differ on some rank";
    if (topology.rank() == 0) {
      std::printf("  %s (%s): loss over the run %.9g over MPI, %.9g emulated\n", c.name.c_str(), progress.c_str(),
                  mpi_totals.loss, local_totals.loss);
      EXPECT_NEAR(mpi_totals.loss, local_totals.loss, tolerance * std::abs(local_totals.loss));
      EXPECT_EQ(mpi_totals.images, local_totals.images);
    }
  }
}

const Dims kMnist{1, 28, 28}, kSmallCifar{3, 16, 16};

ParallelConfig with_partition(ParallelConfig p, const std::string& partition) {
  p.partition = partition;
  return p;
}

ParallelConfig with_staleness(ParallelConfig p, const std::string& mitigations) {
  p.staleness = mitigations;
  return p;
}

ParallelConfig split(ParallelConfig p) {
  p.split_backward = true;
  return p;
}

INSTANTIATE_TEST_SUITE_P(
    Modes, MpiEquivalence,
    ::testing::Values(
        // two ranks
        Case{"dp_sync_2", "lenet5", kMnist, config(1, 2, "none")},
        Case{"dp_overlap_2", "lenet5", kMnist, config(1, 2, "none", 1, "overlap")},
        Case{"dp_delayed_2", "lenet5", kMnist, config(1, 2, "none", 2, "delayed")},
        Case{"dp_sharded_2", "lenet5", kMnist, config(1, 2, "none", 1, "sharded")},
        Case{"dp_delayed_mitigated_2", "lenet5", kMnist,
             with_staleness(config(1, 2, "none", 2, "delayed"), "lr-scale,momentum,predict,dc")},
        Case{"dp_delayed_local_2", "lenet5", kMnist,
             with_staleness(config(1, 2, "none", 2, "delayed"), "lr-scale,momentum,local,warmup")},
        Case{"stale_mitigated_2", "lenet5", kMnist,
             with_staleness(config(2, 1, "stale"), "lr-scale,momentum,predict,dc,warmup")},
        Case{"pipedream_predicted_2", "lenet5", kMnist, with_staleness(config(2, 1, "pipedream"), "predict,dc")},
        Case{"gpipe_2", "lenet5", kMnist, config(2, 1, "gpipe", 4)},
        Case{"zero_bubble_2", "lenet5", kMnist, config(2, 1, "zb", 4)},
        Case{"pipedream_2", "lenet5", kMnist, config(2, 1, "pipedream")},
        Case{"stale_2", "lenet5", kMnist, config(2, 1, "stale")},
        Case{"stale_split_2", "lenet5", kMnist, split(config(2, 1, "stale"))},
        Case{"layerpipe_2", "lenet5", kMnist, config(2, 1, "layerpipe")},
        Case{"stale_resnet_skip_crossing_2", "resnet20", kSmallCifar,
             with_partition(config(2, 1, "stale"), "layer2.0.bn2")},
        Case{"hybrid_stale_then_gpipe_2", "lenet5", kMnist, config(2, 1, "hybrid"), 2},
        // four ranks
        Case{"grid_gpipe_overlap_2x2", "lenet5", kMnist, config(2, 2, "gpipe", 2, "overlap")},
        Case{"grid_stale_2x2", "lenet5", kMnist, config(2, 2, "stale")},
        Case{"grid_pipedream_sharded_2x2", "lenet5", kMnist, config(2, 2, "pipedream", 1, "sharded")},
        Case{"stale_4", "lenet5", kMnist, config(4, 1, "stale")},
        Case{"layerpipe_4", "lenet5", kMnist, config(4, 1, "layerpipe")},
        Case{"grid_layerpipe_overlap_2x2", "lenet5", kMnist, config(2, 2, "layerpipe", 1, "overlap")},
        Case{"zero_bubble_resnet_4", "resnet20", kSmallCifar, config(4, 1, "zb", 4)},
        Case{"gpipe_resnet_4", "resnet20", kSmallCifar, split(config(4, 1, "gpipe", 2))},
        Case{"dp_sync_4", "lenet5", kMnist, config(1, 4, "none")}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace baton
