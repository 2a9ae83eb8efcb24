// Implementation of training, benchmarking and the zoo listing on one rank.
#include "runtime/trainer.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>

#include "layers/network.hpp"
#include "layers/zoo.hpp"
#include "runtime/data_loader.hpp"
#include "runtime/dataset.hpp"
#include "runtime/error.hpp"
#include "runtime/metrics.hpp"
#include "runtime/optimizer.hpp"

namespace baton {
namespace {

using Clock = std::chrono::steady_clock;
using layers::Network;
using layers::Phase;

const char* kDebianFashionMnist = "/usr/share/datasets/fashion-mnist";

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

layers::Backend parse_backend(const std::string& name) {
  if (name == "cpu") return layers::Backend::cpu;
  if (name == "reference") return layers::Backend::reference;
  BATON_FAIL("unknown backend '" << name << "'; choose cpu or reference");
}

DataOptions data_options(const TrainConfig& c, const layers::ZooEntry& model) {
  DataOptions o;
  o.name = c.dataset;
  o.dir = c.data_dir.empty() && c.dataset == "fashion-mnist" ? kDebianFashionMnist : c.data_dir;
  o.synthetic_dims = c.synthetic_dims.empty() ? model.natural_input : c.synthetic_dims;
  o.synthetic_classes = c.synthetic_classes > 0 ? c.synthetic_classes : model.natural_classes;
  o.synthetic_train = c.synthetic_train;
  o.synthetic_test = c.synthetic_test;
  o.seed = c.seed;
  return o;
}

layers::ModelSpec model_for(const std::string& name, const Dataset& data, const std::string& dataset_name) {
  layers::zoo_entry(name);  // an unknown name fails here, before shapes are looked at
  try {
    return layers::build_model(name, data.image_dims, data.classes);
  } catch (const Error& e) {
    throw e.with_context("", "; choose a model made for " + dataset_name +
                                 " (baton models lists each model's input) or a data set with larger images");
  }
}

LrSchedule schedule_for(const TrainConfig& c, int64_t steps_per_epoch) {
  LrSchedule s;
  s.base = c.lr;
  s.shape = parse_lr_shape(c.lr_schedule);
  s.warmup_steps = int64_t(c.warmup_epochs * double(steps_per_epoch));
  s.total_steps = c.epochs * steps_per_epoch;
  for (int64_t epoch : c.lr_milestones) s.milestones.push_back(epoch * steps_per_epoch);
  s.gamma = c.lr_gamma;
  return s;
}

void load_batch(const Batch& batch, Network& net) {
  std::copy(batch.images.begin(), batch.images.end(), net.input(0, 0).data());
  std::copy(batch.labels.begin(), batch.labels.end(), net.labels(0));
}

// One optimisation step on the batch in slot 0: returns the summed loss and the hits.
void train_step(Network& net, Sgd& sgd, float lr, uint64_t step) {
  net.zero_grads();
  net.forward(0, Phase::train, step, net.current_weights());
  net.backward_data(0, net.current_weights(), 1.0f / float(net.batch()));
  net.backward_weights(0, net.grads().data());
  sgd.step(net.weights(), net.grads(), lr);
  net.weights_changed();
}

struct Totals {
  double loss = 0;
  int64_t hits = 0, images = 0;
  double mean_loss() const { return images ? loss / double(images) : 0.0; }
  double accuracy() const { return images ? double(hits) / double(images) : 0.0; }
};

Totals evaluate(Network& net, BatchLoader& loader) {
  Totals totals;
  Batch batch;
  loader.start_epoch(0);
  while (loader.next(batch)) {
    load_batch(batch, net);
    net.forward(0, Phase::eval, 0, net.current_weights());
    totals.loss += net.loss_sum(0, batch.count);
    totals.hits += net.correct(0, batch.count);
    totals.images += batch.count;
  }
  return totals;
}

void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

std::string human_count(double value) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  if (value >= 1e9) out << value / 1e9 << " G";
  else if (value >= 1e6) out << value / 1e6 << " M";
  else if (value >= 1e3) out << value / 1e3 << " k";
  else out << std::setprecision(0) << value << " ";
  return out.str();
}

}  // namespace

std::vector<EpochStats> run_training(const TrainConfig& c) {
  set_threads(c.threads);
  const layers::ZooEntry& entry = layers::zoo_entry(c.model);
  DataSplit data = load_data(data_options(c, entry));
  layers::ModelSpec model = model_for(c.model, data.train, c.dataset);
  Network net(model, 0, int(model.nodes.size()),
              layers::NetworkOptions{parse_backend(c.backend), c.batch_size, 1, c.seed});
  Normalization norm = channel_statistics(data.train);
  BatchLoader train_loader(data.train, norm, c.batch_size, true, true, c.seed);
  BatchLoader test_loader(data.test, norm, c.batch_size, false, false, c.seed);
  Sgd sgd(size_t(net.param_count()), SgdOptions{c.momentum, c.weight_decay, c.nesterov});
  LrSchedule schedule = schedule_for(c, train_loader.batches_per_epoch());
  MetricsLog metrics(c.metrics);

  std::printf("baton: training %s (%s params, %sFLOP per image) on %s: %lld train / %lld test images, batch %lld, "
              "%d threads, %s kernels\n",
              c.model.c_str(), human_count(double(net.param_count())).c_str(),
              human_count(layers::training_flops_per_image(model)).c_str(), c.dataset.c_str(),
              static_cast<long long>(data.train.size()), static_cast<long long>(data.test.size()),
              static_cast<long long>(c.batch_size), omp_get_max_threads(), c.backend.c_str());
  std::fflush(stdout);
  metrics.write({{"event", "start"}, {"model", c.model}, {"dataset", c.dataset}, {"params", net.param_count()},
                 {"batch_size", c.batch_size}, {"threads", omp_get_max_threads()}, {"epochs", c.epochs},
                 {"activation_bytes", net.activation_bytes()}, {"weight_bytes", net.param_count() * 4}});

  std::vector<EpochStats> history;
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= c.epochs; ++epoch) {
    ProgressBar bar("epoch " + std::to_string(epoch), train_loader.batches_per_epoch(), stdout_is_terminal());
    Totals train;
    Batch batch;
    auto start = Clock::now();
    train_loader.start_epoch(epoch);
    while (train_loader.next(batch)) {
      load_batch(batch, net);
      train_step(net, sgd, learning_rate(schedule, step), uint64_t(step));
      ++step;
      train.loss += net.loss_sum(0, batch.count);
      train.hits += net.correct(0, batch.count);
      train.images += batch.count;
      bar.update(batch.index + 1, "loss " + std::to_string(train.mean_loss()).substr(0, 6));
    }
    EpochStats stats;
    stats.epoch = epoch;
    stats.seconds = seconds_since(start);
    stats.images_per_sec = double(train.images) / stats.seconds;
    Totals test = evaluate(net, test_loader);
    bar.clear();
    stats.train_loss = train.mean_loss();
    stats.train_accuracy = train.accuracy();
    stats.test_loss = test.mean_loss();
    stats.test_accuracy = test.accuracy();
    std::printf("epoch %lld/%lld  loss %.4f  train %.2f%%  test %.2f%%  %.0f img/s  %.1f s\n",
                static_cast<long long>(epoch), static_cast<long long>(c.epochs), stats.train_loss,
                100 * stats.train_accuracy, 100 * stats.test_accuracy, stats.images_per_sec, stats.seconds);
    std::fflush(stdout);
    metrics.write({{"event", "epoch"}, {"epoch", epoch}, {"train_loss", stats.train_loss},
                   {"train_accuracy", stats.train_accuracy}, {"test_loss", stats.test_loss},
                   {"test_accuracy", stats.test_accuracy}, {"images_per_sec", stats.images_per_sec},
                   {"seconds", stats.seconds}, {"lr", learning_rate(schedule, step - 1)}});
    history.push_back(stats);
  }
  return history;
}

nlohmann::json run_bench(const BenchConfig& c) {
  set_threads(c.threads);
  const layers::ZooEntry& entry = layers::zoo_entry(c.model);
  layers::ModelSpec model = layers::build_model(c.model, entry.natural_input, entry.natural_classes);
  Network net(model, 0, int(model.nodes.size()), layers::NetworkOptions{parse_backend(c.backend), c.batch_size, 1, c.seed});
  Dataset data = make_synthetic(entry.natural_input, entry.natural_classes, c.batch_size, c.seed, "synthetic");
  std::copy(data.images.begin(), data.images.end(), net.input(0, 0).data());
  std::copy(data.labels.begin(), data.labels.end(), net.labels(0));
  Sgd sgd(size_t(net.param_count()), SgdOptions{0.9f, 5e-4f, false});

  std::vector<double> step_ms;
  for (int64_t i = 0; i < c.warmup + c.iterations; ++i) {
    auto start = Clock::now();
    train_step(net, sgd, 1e-3f, uint64_t(i));
    if (i >= c.warmup) step_ms.push_back(1e3 * seconds_since(start));
  }
  std::nth_element(step_ms.begin(), step_ms.begin() + step_ms.size() / 2, step_ms.end());
  const double median = step_ms[step_ms.size() / 2];
  const double flops = layers::training_flops_per_image(model) * double(c.batch_size);
  return {{"model", c.model},
          {"batch_size", c.batch_size},
          {"threads", omp_get_max_threads()},
          {"median_step_ms", median},
          {"images_per_sec", double(c.batch_size) / (median / 1e3)},
          {"gflops", flops / (median / 1e3) / 1e9}};
}

void print_model_zoo(std::ostream& out) {
  out << std::left << std::setw(11) << "model" << std::right << std::setw(13) << "params" << std::setw(18)
      << "train MFLOP/img" << "  " << std::left << std::setw(12) << "input" << "description\n";
  for (const layers::ZooEntry& entry : layers::zoo()) {
    layers::ModelSpec model = layers::build_model(entry.name, entry.natural_input, entry.natural_classes);
    out << std::left << std::setw(11) << entry.name << std::right << std::setw(13) << layers::count_params(model)
        << std::setw(18) << std::fixed << std::setprecision(1) << layers::training_flops_per_image(model) / 1e6 << "  "
        << std::left << std::setw(12) << to_string(entry.natural_input) << entry.description << "\n";
  }
}

}  // namespace baton
