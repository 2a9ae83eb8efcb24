// Implementation of the command line: option groups per subcommand, INI merging and validation.
#include "runtime/app/cli.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>

#include "baton/config.hpp"
#include "runtime/base/error.hpp"

namespace po = boost::program_options;

namespace baton {
namespace {

// The most ranks a configuration may have: far beyond any cluster, small enough that products of
// ranks, microbatches and steps stay within 64 bits.
constexpr int64_t kMaxRanks = int64_t(1) << 20;
constexpr int kMaxPad = 1024;  // --pad: far beyond any frame a model needs; keeps padded sides small

// Boost.Program_options 1.74 fills an error's template by replacing each %placeholder% until none
// is left, so an option name or value that itself holds one (--lr %value%, --x%canonical_option%)
// loops for ever. This fills the same template, replacing each occurrence once.
class OptionErrorText : po::error_with_option_name {
 public:
  static std::string of(const po::error& error) {
    const auto* e = dynamic_cast<const po::error_with_option_name*>(&error);
    if (e == nullptr) return error.what();  // a fixed text
    std::map<std::string, std::string> values = e->*(&OptionErrorText::m_substitutions);
    values["canonical_option"] = (e->*(&OptionErrorText::get_canonical_option_name))();
    values["prefix"] = (e->*(&OptionErrorText::get_canonical_option_prefix))();
    std::string text = e->m_error_template;
    for (const auto& [name, fallback] : e->*(&OptionErrorText::m_substitution_defaults))  // Boost's own texts
      if (values[name].empty()) text = replaced(text, fallback.first, fallback.second);
    return filled(text, values);
  }

 private:
  static std::string replaced(std::string text, const std::string& from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
      text.replace(at, from.size(), to);
    return text;
  }

  // One pass over the template: what a placeholder is replaced with is not looked at again.
  static std::string filled(const std::string& text, const std::map<std::string, std::string>& values) {
    std::string out;
    size_t at = 0;
    for (size_t open; (open = text.find('%', at)) != std::string::npos;) {
      const size_t close = text.find('%', open + 1);
      if (close == std::string::npos) break;
      auto value = values.find(text.substr(open + 1, close - open - 1));
      out += text.substr(at, open - at) + (value != values.end() ? value->second : text.substr(open, close - open + 1));
      at = close + 1;
    }
    return out + text.substr(at);
  }
};

const char* kUsage =
    "usage: baton <command> [options]\n"
    "\n"
    "commands:\n"
    "  train    train a model (see baton train --help)\n"
    "  bench    time training steps on synthetic data (see baton bench --help)\n"
    "  schedule print every rank's program of a training mode (see baton schedule --help)\n"
    "  profile  measure each layer's passes and write a cost file (see baton profile --help)\n"
    "  simulate predict a configuration's step time on a cluster from a cost file (see baton simulate --help)\n"
    "  models   list the model zoo with parameter counts and training FLOPs per image\n"
    "  export   write a checkpoint's whole model as one safetensors file (see baton export --help)\n"
    "  report   draw a run's curves and each rank's busy, communication and idle time per update from\n"
    "           its metrics file and timeline: baton report METRICS.jsonl [TIMELINE.json] --output DIR\n"
    "  --version\n";

std::vector<int64_t> parse_list(const std::string& text, const std::string& flag) {
  const bool shape = flag == "--input-shape";
  std::vector<int64_t> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, shape ? 'x' : ',')) {
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    BATON_CHECK(!item.empty() && used == item.size(),
                flag << " expects numbers separated by " << (shape ? "'x' (e.g. 3x32x32)" : "',' (e.g. 5,8)") << ", not '"
                     << text << "'");
    values.push_back(value);
  }
  BATON_CHECK(!text.empty() && text.back() != (shape ? 'x' : ','),
              flag << " expects numbers separated by " << (shape ? "'x' (e.g. 3x32x32)" : "',' (e.g. 5,8)") << ", not '"
                   << text << "'");
  if (shape) {
    BATON_CHECK(values.size() == 3 && std::all_of(values.begin(), values.end(), [](int64_t v) { return v >= 1; }),
                "--input-shape is channels x height x width, each at least 1 (e.g. 3x32x32), not '" << text << "'");
  }
  return values;
}

// A seed is a non-negative integer (Boost would read "-1" as 2^64 - 1).
uint64_t parse_seed(const std::string& text) {
  size_t used = 0;
  unsigned long long value = 0;
  const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  try {
    if (digits) value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  BATON_CHECK(digits && used == text.size(), "--seed takes a whole number from 0 to 18446744073709551615, not '"
                                                  << text << "'");
  return value;
}

// A number that must be finite and within [low, high] (high_open: < high).
void check_range(double value, const std::string& flag, double low, double high, bool high_open, const std::string& why) {
  BATON_CHECK(std::isfinite(value) && value >= low && (high_open ? value < high : value <= high),
              flag << " must be " << why << ", not " << value);
}

po::options_description general_options(std::string& config_file, std::string& seed, int& threads, std::string& backend,
                                        int& device, double& max_memory_gib) {
  po::options_description group("General");
  group.add_options()
      ("help,h", "print this help")
      ("config", po::value(&config_file), "read options from this INI file (key = value); the command line wins")
      ("seed", po::value(&seed)->default_value(seed), "seed of initial weights, shuffling and dropout")
      ("max-memory", po::value(&max_memory_gib)->default_value(max_memory_gib),
       "GiB the data, the model and its activations may claim in each process, checked before they are allocated "
       "(0: 90% of this machine's or job's memory, shared by the ranks on it)")
      ("threads", po::value(&threads)->default_value(threads), "OpenMP threads for the kernels (0: all cores)")
      ("backend", po::value(&backend)->default_value(backend),
       "kernels: cpu (oneDNN), cuda (cuDNN and cuBLAS on a GPU) or reference (plain loops, slow, for checking)")
      ("device", po::value(&device)->default_value(device),
       "the CUDA device of --backend cuda (-1: the launcher's local rank modulo the devices on the node)");
  return group;
}

po::options_description parallel_options(ParallelConfig& p) {
  po::options_description group("Parallel");
  group.add_options()
      ("stages", po::value(&p.stages)->default_value(p.stages), "pipeline stages K")
      ("replicas", po::value(&p.replicas)->default_value(p.replicas), "data-parallel replicas R of every stage")
      ("pipeline", po::value(&p.pipeline)->default_value(p.pipeline),
       "none, gpipe, zb (GPipe's arithmetic in ZB-H1's order: weight gradients fill the bubbles), pipedream (1F1B, "
       "weight stashing), stale (1F1B, no stashing), layerpipe (lock step: forwards 2(K-1-s) updates behind, split "
       "backward) or hybrid (stale, then not pipelined)")
      ("microbatches", po::value(&p.microbatches)->default_value(p.microbatches),
       "microbatches per update (gradients accumulate; gpipe fills the pipe with them)")
      ("dp", po::value(&p.dp)->default_value(p.dp), "averaging over replicas: sync, overlap, delayed or sharded")
      ("split-backward", po::bool_switch(&p.split_backward),
       "LayerPipe: send the input gradient before computing the weight gradient")
      ("partition", po::value(&p.partition),
       "where stages 2..K begin, as layer names or indices (e.g. layer2.0.conv1,layer3.0.conv1); default: balanced FLOPs")
      ("partition-by", po::value(&p.partition_by)->default_value(p.partition_by),
       "balance stages by flops (reproducible), by time (each layer measured here; ranks agree on the mean), or by "
       "a cost file from baton profile (its times plus what each stage sends and receives)")
      ("stage-backends", po::value(&p.stage_backends),
       "one backend per stage, e.g. cuda,cpu: a pipeline of GPU and CPU stages (tensors cross as plain NCHW); "
       "default: --backend for every stage")
      ("hybrid-switch-epoch", po::value(&p.hybrid_switch_epoch),
       "hybrid: the first epoch (1-based) trained without pipelining; default: half of the epochs + 1")
      ("hybrid-plateau", po::value(&p.hybrid_plateau)->default_value(p.hybrid_plateau),
       "hybrid: train without pipelining from the epoch after the first one whose training loss fell by less than "
       "this fraction (e.g. 0.05); --hybrid-switch-epoch is then the latest switch; 0: off")
      ("bucket-mb", po::value(&p.bucket_mb)->default_value(p.bucket_mb), "gradient bucket size for overlap and sharded")
      ("staleness", po::value(&p.staleness)->default_value(p.staleness),
       "what a stage whose weights are d updates behind does about it: auto (stale, pipedream, layerpipe: "
       "predict,warmup, and lr-scale too when a stage is more than 3 updates behind; delayed averaging: local), "
       "none, or a list of lr-scale (lr / (1 + d)), momentum (momentum - d / (1 + d)), "
       "predict (passes use W - d * lr * velocity), local (delayed averaging: passes use the weights the next step "
       "would give if this replica's own newest gradient were the average), dc (g + lambda * g * g * (W_now - "
       "W_then), W_then the weights of the update's first forward) and warmup (the stage's rate ramps linearly over "
       "the run's first epoch)")
      ("dc-lambda", po::value(&p.dc_lambda)->default_value(p.dc_lambda), "lambda of --staleness dc")
      ("emulate", po::bool_switch(&p.emulate), "run every stage and replica in this one process")
      ("progress", po::value(&p.progress)->default_value(p.progress),
       "MPI progress: thread (a communication thread) or poll (the compute thread tests requests between layers)")
      ("stall-timeout", po::value(&p.stall_timeout)->default_value(p.stall_timeout),
       "seconds without progress before a rank reports what it waits for and who is late (0: never)")
      ("timeline", po::value(&p.timeline), "write a Chrome-trace timeline (Perfetto) of the first epoch");
  return group;
}

void check_parallel(const ParallelConfig& p) {
  BATON_CHECK(p.stages >= 1, "--stages must be at least 1, not " << p.stages);
  BATON_CHECK(p.replicas >= 1, "--replicas must be at least 1, not " << p.replicas);
  BATON_CHECK(int64_t(p.stages) * p.replicas <= kMaxRanks, p.stages << " stages x " << p.replicas << " replicas make "
                                                                   << int64_t(p.stages) * p.replicas
                                                                   << " ranks, more than baton's " << kMaxRanks
                                                                   << "; choose fewer stages or replicas");
  BATON_CHECK(p.microbatches >= 1, "--microbatches must be at least 1, not " << p.microbatches);
  BATON_CHECK(p.pipeline != "hybrid" || p.microbatches == 1,
              "hybrid updates after every microbatch while stale and then trains without pipelining, so it takes "
              "--microbatches 1; choose the microbatch with --batch-size");
  check_range(p.bucket_mb, "--bucket-mb", std::numeric_limits<double>::min(), 1e12, false, "a positive size");
  BATON_CHECK(p.partition_by == "flops" || p.partition_by == "time" || std::filesystem::is_regular_file(p.partition_by),
              "--partition-by '" << p.partition_by << "' is neither flops, time nor an existing cost file; choose one "
                                 << "(baton profile --output FILE writes a cost file)");
  BATON_CHECK(p.progress == "poll" || p.progress == "thread",
              "unknown --progress '" << p.progress << "'; choose poll or thread");
  check_range(p.stall_timeout, "--stall-timeout", 0, 1e9, false, "0 (never) or more seconds");
  const std::optional<Mitigations> mitigations = parse_mitigations(p.staleness);  // names an unknown one
  BATON_CHECK(!mitigations || !mitigations->local || p.dp == "delayed",
              "--staleness local predicts from the gradient delayed averaging has not yet applied; use it with "
              "--dp delayed");
  check_range(p.dc_lambda, "--dc-lambda", 0, 1e6, false, "0 or more");
  check_range(p.hybrid_plateau, "--hybrid-plateau", 0, 1, true, "a fraction from 0 (off) to below 1");
  BATON_CHECK(p.hybrid_plateau == 0 || p.pipeline == "hybrid",
              "--hybrid-plateau decides when --pipeline hybrid stops pipelining; pass --pipeline hybrid with it");
}

void check_max_memory(double gib) {
  check_range(gib, "--max-memory", 0, 1e9, false, "0 (90% of this machine's memory) or more GiB");
}

// Settings that would diverge or train backwards are refused before anything runs.
void check_optimisation(const TrainConfig& c) {
  constexpr double kMax = 1e30;
  check_range(c.lr, "--lr", std::numeric_limits<double>::min(), kMax, false, "a positive number");
  check_range(c.momentum, "--momentum", 0, 1, true, "at least 0 and below 1");
  check_range(c.weight_decay, "--weight-decay", 0, kMax, false, "0 or more");
  check_range(c.lr_gamma, "--lr-gamma", std::numeric_limits<double>::min(), kMax, false, "a positive factor");
  check_range(c.warmup_epochs, "--warmup-epochs", 0, double(c.epochs), false,
              "from 0 to --epochs (" + std::to_string(c.epochs) + ")");
  for (int64_t milestone : c.lr_milestones)
    BATON_CHECK(milestone >= 1 && milestone <= c.epochs,
                "--lr-milestones are epochs from 1 to --epochs (" << c.epochs << "), not " << milestone);
}

void check_data(const TrainConfig& c, bool classes_given) {
  BATON_CHECK(!classes_given || c.synthetic_classes >= 2,
              "--classes must be at least 2, not " << c.synthetic_classes);
  BATON_CHECK(c.synthetic_train >= 1, "--train-size must be at least 1, not " << c.synthetic_train);
  BATON_CHECK(c.synthetic_test >= 1, "--test-size must be at least 1 (accuracy is measured on it), not "
                                         << c.synthetic_test);
  BATON_CHECK(c.pad >= 0 && c.pad <= kMaxPad, "--pad must be from 0 to " << kMaxPad << " pixels, not " << c.pad);
}

// stages x replicas x microbatches must fit the batch (and int), whatever the values.
void check_split(const ParallelConfig& p, int64_t batch_size) {
  const int64_t shares = int64_t(p.replicas) * int64_t(p.microbatches);
  BATON_CHECK(shares <= batch_size, "--batch-size " << batch_size << " cannot be split into " << p.replicas
                                                    << " replica(s) x " << p.microbatches
                                                    << " microbatch(es); choose fewer or a larger batch");
}

void check_checkpoints(const TrainConfig& c) {
  BATON_CHECK(c.log_every >= 0, "--log-every must be 0 (no step events) or more, not " << c.log_every);
  BATON_CHECK(c.checkpoint_every >= 0, "--checkpoint-every must be 0 (epoch ends only) or more updates, not "
                                           << c.checkpoint_every);
  BATON_CHECK(c.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1, not " << c.keep_checkpoints);
  BATON_CHECK(c.stop_after_updates >= 0, "--stop-after-updates must be 0 (never) or more, not " << c.stop_after_updates);
  const bool has_dir = !c.checkpoint_dir.empty();
  BATON_CHECK(has_dir || !c.resume, "--resume needs --checkpoint-dir, the folder to resume from");
  BATON_CHECK(has_dir || c.checkpoint_every == 0, "--checkpoint-every needs --checkpoint-dir, the folder to write to");
  BATON_CHECK(has_dir || c.stop_after_updates == 0,
              "--stop-after-updates writes a checkpoint before it stops, so it needs --checkpoint-dir");
}

struct Parsed {
  po::variables_map vm;
  bool help = false;
};

// Parses argv and then the --config file; values stored first win, so the command line wins.
Parsed parse(const po::options_description& all, const std::vector<std::string>& args, const std::string& command) {
  Parsed parsed;
  const std::string help = "; run 'baton " + command + " --help' for the options";
  try {
    po::store(po::command_line_parser(args).options(all).run(), parsed.vm);
  } catch (const po::error& e) {
    BATON_FAIL(OptionErrorText::of(e) << help);
  }
  if (parsed.vm.count("config")) {
    const std::string path = parsed.vm["config"].as<std::string>();
    BATON_CHECK(std::filesystem::is_regular_file(path),
                "the config file '" << path << "' does not exist; pass --config with the path of an INI file");
    try {
      po::store(po::parse_config_file<char>(path.c_str(), all), parsed.vm);
    } catch (const po::error& e) {
      BATON_FAIL("the config file '" << path << "' is not valid: " << OptionErrorText::of(e) << help);
    }
  }
  try {
    po::notify(parsed.vm);
  } catch (const po::error& e) {
    BATON_FAIL(OptionErrorText::of(e) << help);
  }
  parsed.help = parsed.vm.count("help") > 0;
  return parsed;
}

Invocation help_for(const po::options_description& options) {
  std::ostringstream help;
  help << options;
  Invocation inv;
  inv.help_text = help.str();
  return inv;
}

void check_positive(int64_t value, const std::string& flag) {
  BATON_CHECK(value >= 1, flag << " must be at least 1, not " << value);
}

// A command that only prints: help, version, the model listing.
Invocation printing(Command command, const std::string& text) {
  Invocation inv;
  inv.command = command;
  inv.help_text = text;
  return inv;
}

Invocation parse_train(const std::vector<std::string>& args) {
  Invocation inv;
  inv.command = Command::train;
  TrainConfig& c = inv.train;
  std::string config_file, shape, milestones;
  po::options_description data("Model and data");
  data.add_options()
      ("model", po::value(&c.model)->default_value(c.model), "network from the zoo (baton models lists them)")
      ("dataset", po::value(&c.dataset)->default_value(c.dataset), "fashion-mnist, mnist, cifar10 or synthetic")
      ("data-dir", po::value(&c.data_dir),
       "folder with the data files (default for fashion-mnist: /usr/share/datasets/fashion-mnist)")
      ("input-shape", po::value(&shape), "synthetic: image shape CxHxW (default: the model's own)")
      ("classes", po::value(&c.synthetic_classes), "synthetic: number of classes (default: the model's own)")
      ("train-size", po::value(&c.synthetic_train)->default_value(c.synthetic_train), "synthetic: training images")
      ("test-size", po::value(&c.synthetic_test)->default_value(c.synthetic_test), "synthetic: test images")
      ("pad", po::value(&c.pad)->default_value(c.pad),
       "zero pixels added on every side of every image (2 turns Fashion-MNIST's 28x28 into the 32x32 VGG needs)");
  po::options_description optim("Optimisation");
  optim.add_options()
      ("epochs", po::value(&c.epochs)->default_value(c.epochs), "passes over the training set")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "images per step")
      ("lr", po::value(&c.lr)->default_value(c.lr), "base learning rate")
      ("momentum", po::value(&c.momentum)->default_value(c.momentum), "SGD momentum")
      ("nesterov", po::bool_switch(&c.nesterov), "use Nesterov momentum")
      ("weight-decay", po::value(&c.weight_decay)->default_value(c.weight_decay), "L2 weight decay")
      ("lr-schedule", po::value(&c.lr_schedule)->default_value(c.lr_schedule), "constant, step or cosine")
      ("lr-milestones", po::value(&milestones), "step schedule: epochs at which the rate is multiplied by --lr-gamma (e.g. 5,8)")
      ("lr-gamma", po::value(&c.lr_gamma)->default_value(c.lr_gamma), "step schedule: factor at each milestone")
      ("warmup-epochs", po::value(&c.warmup_epochs)->default_value(c.warmup_epochs), "linear warm-up length");
  std::string shuffle = c.shuffle ? "on" : "off";
  data.add_options()("shuffle", po::value(&shuffle)->default_value(shuffle),
                     "on: a new permutation of the training set each epoch; off: the files' order");
  po::options_description output("Output");
  output.add_options()
      ("metrics", po::value(&c.metrics), "write JSON lines (one per event) to this file")
      ("log-every", po::value(&c.log_every)->default_value(c.log_every),
       "a step event (epoch, update, loss, lr, images_per_sec) every N updates; 0: none (1 with --tensorboard)")
      ("tensorboard", po::value(&c.tensorboard),
       "also write the step and epoch events as TensorBoard scalars into this folder (tensorboard --logdir DIR)");
  po::options_description checkpoints("Checkpoints");
  checkpoints.add_options()
      ("checkpoint-dir", po::value(&c.checkpoint_dir),
       "write checkpoints here (one step-<update> folder each) at every epoch's end; SIGUSR1 or SIGTERM then "
       "checkpoints and stops with exit status 75")
      ("checkpoint-every", po::value(&c.checkpoint_every)->default_value(c.checkpoint_every),
       "also every N updates (pipelines drain at each checkpoint point, README); 0: epoch ends only")
      ("keep-checkpoints", po::value(&c.keep_checkpoints)->default_value(c.keep_checkpoints),
       "complete checkpoints kept; older ones are deleted")
      ("resume", po::bool_switch(&c.resume),
       "continue from the newest complete checkpoint in --checkpoint-dir (none yet: start from the beginning)")
      ("stop-after-updates", po::value(&c.stop_after_updates)->default_value(c.stop_after_updates),
       "checkpoint and stop (exit status 75) at the first checkpoint point after N updates, e.g. to chain jobs; 0: never")
      ("init-from", po::value(&c.init_from),
       "start from the weights in this safetensors file (PyTorch names, e.g. a twin's state_dict()); ignored when "
       "--resume finds a checkpoint");
  po::options_description all("baton train: train a model\n\nusage: baton train [options]");
  std::string seed = std::to_string(c.seed);
  all.add(general_options(config_file, seed, c.threads, c.backend, c.device, c.max_memory_gib))
      .add(data)
      .add(optim)
      .add(parallel_options(c.parallel))
      .add(output)
      .add(checkpoints);

  Parsed parsed = parse(all, args, "train");
  if (parsed.help) return help_for(all);
  if (!shape.empty()) c.synthetic_dims = parse_list(shape, "--input-shape");
  if (!milestones.empty()) c.lr_milestones = parse_list(milestones, "--lr-milestones");
  c.seed = parse_seed(seed);
  check_positive(c.epochs, "--epochs");
  check_positive(c.batch_size, "--batch-size");
  check_optimisation(c);
  check_data(c, parsed.vm.count("classes") > 0);
  BATON_CHECK(c.threads >= 0, "--threads must be 0 (all cores) or more, not " << c.threads);
  check_max_memory(c.max_memory_gib);
  BATON_CHECK(shuffle == "on" || shuffle == "off", "--shuffle takes on or off, not '" << shuffle << "'");
  c.shuffle = shuffle == "on";
  check_parallel(c.parallel);
  check_split(c.parallel, c.batch_size);
  BATON_CHECK(c.parallel.hybrid_switch_epoch == -1 ||
                  (c.parallel.hybrid_switch_epoch >= 1 && c.parallel.hybrid_switch_epoch <= c.epochs),
              "--hybrid-switch-epoch is the first epoch trained without pipelining, from 1 to --epochs ("
                  << c.epochs << "), not " << c.parallel.hybrid_switch_epoch);
  check_checkpoints(c);
  if (!c.tensorboard.empty() && parsed.vm["log-every"].defaulted()) c.log_every = 1;
  return inv;
}

Invocation parse_export(const std::vector<std::string>& args) {
  Invocation inv;
  inv.command = Command::export_model;
  ExportCommand& c = inv.export_model;
  po::options_description shown("baton export: write a checkpoint's whole model, for inference, as one safetensors "
                                "file named like PyTorch's state_dict()\n\nusage: baton export CHECKPOINT_DIR --output "
                                "FILE.safetensors");
  shown.add_options()("help,h", "print this help")("output", po::value(&c.output), "the safetensors file to write");
  po::options_description all;
  all.add(shown).add_options()("checkpoint", po::value(&c.checkpoint_dir));
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    BATON_FAIL(OptionErrorText::of(e) << "; run 'baton export --help' for the options");
  }
  if (vm.count("help")) return help_for(shown);
  BATON_CHECK(!c.checkpoint_dir.empty(), "baton export needs the checkpoint folder: baton export DIR --output FILE");
  BATON_CHECK(!c.output.empty(), "baton export needs --output FILE.safetensors");
  return inv;
}

Invocation parse_schedule(const std::vector<std::string>& args) {
  Invocation inv;
  inv.command = Command::schedule;
  ScheduleCommand& c = inv.schedule;
  c.parallel.stages = 4;
  c.parallel.pipeline = "stale";
  po::options_description shown("Schedule");
  shown.add_options()("help,h", "print this help")("steps", po::value(&c.steps)->default_value(c.steps),
                                                   "updates (minibatches) in the program shown");
  po::options_description all("baton schedule: print every rank's program and its timing at unit costs\n\n"
                              "usage: baton schedule [options]");
  all.add(shown).add(parallel_options(c.parallel));
  Parsed parsed = parse(all, args, "schedule");
  if (parsed.help) return help_for(all);
  check_positive(c.steps, "--steps");
  check_parallel(c.parallel);
  // It prints every rank's program and a time x rank diagram, for people to read: 3200 stages took
  // about 1 GB and 1024 stages 0.9 s and 120 MB, so larger ones are refused rather than left to swap.
  constexpr int64_t kMaxShownRanks = 1024, kMaxShownMicrobatches = 1000000;
  const int64_t ranks = int64_t(c.parallel.stages) * c.parallel.replicas;
  BATON_CHECK(ranks <= kMaxShownRanks, "baton schedule prints every rank's program, and "
                                           << ranks << " ranks are more than the " << kMaxShownRanks
                                           << " it shows; choose fewer stages or replicas");
  BATON_CHECK(c.steps <= kMaxShownMicrobatches / (ranks * c.parallel.microbatches),
              "baton schedule prints every rank's program, and --steps " << c.steps << " x " << ranks << " ranks x "
                                                                         << c.parallel.microbatches
                                                                         << " microbatches is more than the "
                                                                         << kMaxShownMicrobatches
                                                                         << " it shows; choose fewer steps");
  return inv;
}

Invocation parse_bench(const std::vector<std::string>& args) {
  Invocation inv;
  inv.command = Command::bench;
  BenchConfig& c = inv.bench;
  std::string config_file;
  po::options_description run("Benchmark");
  run.add_options()
      ("model", po::value(&c.model)->default_value(c.model), "network from the zoo, on synthetic data of its own input shape")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "images per step")
      ("iterations", po::value(&c.iterations)->default_value(c.iterations), "updates in each timed run")
      ("repeats", po::value(&c.repeats)->default_value(c.repeats), "timed runs (the median per-update time is reported)")
      ("warmup", po::value(&c.warmup)->default_value(c.warmup), "untimed updates first")
      ("measure", po::value(&c.measure)->default_value(c.measure),
       "step: whole training steps; comm: only the averaging of the gradient over replicas; compute: every "
       "replica's steps without averaging (both under mpirun)");
  po::options_description all("baton bench: time whole training steps (forward, backward, update)\n\nusage: baton bench [options]");
  c.threads = 1;
  std::string seed = std::to_string(c.seed);
  all.add(general_options(config_file, seed, c.threads, c.backend, c.device, c.max_memory_gib))
      .add(run)
      .add(parallel_options(c.parallel));
  Parsed parsed = parse(all, args, "bench");
  if (parsed.help) return help_for(all);
  c.seed = parse_seed(seed);
  check_max_memory(c.max_memory_gib);
  check_positive(c.batch_size, "--batch-size");
  check_positive(c.iterations, "--iterations");
  check_positive(c.repeats, "--repeats");
  BATON_CHECK(c.warmup >= 0, "--warmup must be 0 or more, not " << c.warmup);
  BATON_CHECK(c.measure == "step" || c.measure == "comm" || c.measure == "compute",
              "unknown --measure '" << c.measure << "'; choose step, comm or compute");
  check_parallel(c.parallel);
  check_split(c.parallel, c.batch_size);
  BATON_CHECK(c.threads >= 0, "--threads must be 0 (all cores) or more, not " << c.threads);
  return inv;
}

Invocation parse_profile(const std::vector<std::string>& args) {
  Invocation inv;
  inv.command = Command::profile;
  ProfileCommand& c = inv.profile;
  std::string config_file, counts = "1";
  po::options_description run("Profile");
  run.add_options()
      ("model", po::value(&c.model)->default_value(c.model), "network from the zoo, at its own input shape")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "images per step")
      ("microbatches", po::value(&counts)->default_value(counts),
       "comma-separated microbatch counts; each measures microbatches of batch-size / count images (e.g. 1,2,4)")
      ("repeats", po::value(&c.repeats)->default_value(c.repeats), "timed passes per size (the median is kept)")
      ("network", po::bool_switch(&c.network),
       "instead, under mpirun, time messages within and between nodes and an allreduce, and write a network file "
       "for baton simulate --network")
      ("output", po::value(&c.output), "write the cost file (JSON) here");
  po::options_description all("baton profile: measure each layer's forward, data-gradient and weight-gradient time\n\n"
                              "usage: baton profile [options] --output costs.json");
  std::string seed = std::to_string(c.seed);
  all.add(general_options(config_file, seed, c.threads, c.backend, c.device, c.max_memory_gib)).add(run);
  Parsed parsed = parse(all, args, "profile");
  if (parsed.help) return help_for(all);
  c.seed = parse_seed(seed);
  c.microbatches = parse_list(counts, "--microbatches");
  for (int64_t count : c.microbatches) check_positive(count, "every --microbatches count");
  check_positive(c.batch_size, "--batch-size");
  check_positive(c.repeats, "--repeats");
  check_max_memory(c.max_memory_gib);
  BATON_CHECK(c.threads >= 0, "--threads must be 0 (all cores) or more, not " << c.threads);
  return inv;
}

Invocation parse_simulate(const std::vector<std::string>& args) {
  Invocation inv;
  inv.command = Command::simulate;
  SimulateCommand& c = inv.simulate;
  std::string config_file;
  po::options_description run("Simulation");
  run.add_options()
      ("help,h", "print this help")
      ("config", po::value(&config_file), "read options from this INI file (key = value); the command line wins")
      ("model", po::value(&c.model)->default_value(c.model), "network from the zoo, as the cost file timed it")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "images per step")
      ("iterations", po::value(&c.iterations)->default_value(c.iterations), "updates in the simulated program")
      ("costs", po::value(&c.costs), "the cost file baton profile wrote for this model (required)")
      ("network", po::value(&c.network), "a network file (README, \"Simulator\"); default: shared memory within a "
                                          "node, 10 Gbit/s Ethernet between nodes")
      ("nodes", po::value(&c.nodes)->default_value(c.nodes), "nodes (0: as many as the ranks need)")
      ("ranks-per-node", po::value(&c.ranks_per_node)->default_value(c.ranks_per_node),
       "ranks on each node (0: all on one node, or ranks / --nodes)")
      ("cores-per-node", po::value(&c.cores_per_node)->default_value(c.cores_per_node),
       "cores each node's computing ranks share (0: the network file's, else as many as its ranks' threads)")
      ("search", po::bool_switch(&c.search),
       "rank every configuration of --nodes x --ranks-per-node ranks by predicted throughput")
      ("memory-per-rank", po::value(&c.memory_per_rank_gib)->default_value(c.memory_per_rank_gib),
       "search: leave out configurations whose busiest rank needs more GiB (0: no limit)");
  po::options_description all("baton simulate: predict the step time, idle and memory of a configuration\n\n"
                              "usage: baton simulate --costs costs.json [options]");
  all.add(run).add(parallel_options(c.parallel));
  Parsed parsed = parse(all, args, "simulate");
  if (parsed.help) return help_for(all);
  BATON_CHECK(!c.costs.empty(), "baton simulate needs --costs FILE, from baton profile --model " << c.model
                                                                                             << " --output FILE");
  check_positive(c.batch_size, "--batch-size");
  check_positive(c.iterations, "--iterations");
  BATON_CHECK(c.nodes >= 0 && c.nodes <= kMaxRanks, "--nodes must be from 0 to " << kMaxRanks << ", not " << c.nodes);
  BATON_CHECK(c.ranks_per_node >= 0 && c.ranks_per_node <= kMaxRanks,
              "--ranks-per-node must be from 0 to " << kMaxRanks << ", not " << c.ranks_per_node);
  BATON_CHECK(c.cores_per_node >= 0 && c.cores_per_node <= kMaxRanks,
              "--cores-per-node must be from 0 to " << kMaxRanks << ", not " << c.cores_per_node);
  BATON_CHECK(!c.search || (c.nodes > 0 && c.ranks_per_node > 0),
              "--search ranks the configurations of a world; give it with --nodes and --ranks-per-node");
  check_range(c.memory_per_rank_gib, "--memory-per-rank", 0, 1e9, false, "0 (no limit) or more GiB");
  check_parallel(c.parallel);
  // Replica 0's programs are built in full: a million microbatches per rank is far beyond a step.
  constexpr int64_t kMaxSimulatedMicrobatches = 1000000;
  BATON_CHECK(c.iterations <= kMaxSimulatedMicrobatches / c.parallel.microbatches,
              "--iterations " << c.iterations << " x " << c.parallel.microbatches
                              << " microbatches is more than the " << kMaxSimulatedMicrobatches
                              << " a simulation plays; a few times the pipeline's depth shows the steady state");
  if (!c.search) check_split(c.parallel, c.batch_size);
  return inv;
}

}  // namespace

std::optional<Mitigations> parse_mitigations(const std::string& list) {
  if (list == "auto") return std::nullopt;
  Mitigations m;
  if (list == "none") return m;
  std::stringstream names(list);
  for (std::string name; std::getline(names, name, ',');) {
    bool* chosen = name == "lr-scale" ? &m.lr_scale : name == "momentum" ? &m.momentum
                 : name == "predict"  ? &m.predict  : name == "local"    ? &m.local
                 : name == "dc"       ? &m.dc       : name == "warmup"   ? &m.warmup : nullptr;
    BATON_CHECK(chosen != nullptr, "unknown --staleness '" << name << "'; choose auto, none, or a comma-separated list "
                                                              "of lr-scale, momentum, predict, local, dc and warmup");
    *chosen = true;
  }
  BATON_CHECK(!list.empty() && list.back() != ',', "--staleness lists mitigations separated by ',', not '" << list << "'");
  BATON_CHECK(!(m.local && m.predict), "--staleness predict and local both choose the weights a delayed pass uses; "
                                       "name one of them");
  BATON_CHECK(!(m.local && m.dc), "--staleness dc corrects from the weights each pass used, which local makes differ "
                                  "between replicas (their weights would part); name one of them");
  return m;
}

Invocation parse_command_line(int argc, const char* const argv[]) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help")
    return printing(Command::help, kUsage);
  if (args[0] == "--version") return printing(Command::version, std::string("baton ") + BATON_VERSION);
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "train") return parse_train(args);
  if (command == "bench") return parse_bench(args);
  if (command == "schedule") return parse_schedule(args);
  if (command == "export") return parse_export(args);
  if (command == "profile") return parse_profile(args);
  if (command == "simulate") return parse_simulate(args);
  if (command == "models") {
    BATON_CHECK(args.empty(), "baton models takes no options, but got '" << args[0] << "'");
    return printing(Command::models, "");
  }
  BATON_FAIL("unknown command '" << command
                                 << "'; use train, bench, schedule, profile, simulate, models, export or report (baton --help)");
}

}  // namespace baton
