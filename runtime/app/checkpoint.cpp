// Implementation of checkpoint writing, choosing, loading and exporting.
#include "runtime/app/checkpoint.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>

#include "runtime/base/error.hpp"
#include "runtime/base/safetensors.hpp"

namespace baton {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "baton-checkpoint";
constexpr int kVersion = 1;
constexpr const char* kPartial = ".partial";
constexpr const char* kBatchesTracked = ".num_batches_tracked";

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

std::string without_tail(const std::string& text, const std::string& tail) {
  return text.substr(0, text.size() - tail.size());
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
  return text + "]";
}

template <class T>
std::span<T> slice(std::span<T> flat, const layers::NamedTensor& t) {
  return flat.subspan(size_t(t.offset), size_t(element_count(t.dims)));
}

// Batch-norm nodes of a network: those with running statistics (PyTorch counts their batches).
std::vector<std::string> batch_norm_nodes(const layers::Network& net) {
  std::vector<std::string> nodes;
  for (const layers::NamedTensor& t : net.named_tensors())
    if (t.state && ends_with(t.name, ".running_mean")) nodes.push_back(without_tail(t.name, ".running_mean"));
  return nodes;
}

// One worker's files: replica 0 writes its stage's weights with statistics, and its momentum;
// other replicas only their own batch-norm statistics. Returns the manifest's records of them.
nlohmann::json write_worker(const std::string& folder, NetworkWorker& worker, int64_t batches_tracked) {
  layers::Network& net = worker.network();
  const std::vector<std::string> bn_nodes = batch_norm_nodes(net);
  const std::vector<int64_t> tracked(bn_nodes.size(), batches_tracked);
  const std::string stage = "stage" + std::to_string(worker.stage());
  nlohmann::json records = nlohmann::json::array();
  auto add_state = [&](SafetensorsWriter& writer, std::vector<std::string>& names) {
    for (const layers::NamedTensor& t : net.named_tensors()) {
      if (!t.state) continue;
      writer.add(t.name, std::span<const float>(slice(net.state(), t)), t.dims);
      names.push_back(t.name);
    }
    for (size_t i = 0; i < bn_nodes.size(); ++i) {
      writer.add(bn_nodes[i] + kBatchesTracked, std::span<const int64_t>(&tracked[i], 1), {});
      names.push_back(bn_nodes[i] + kBatchesTracked);
    }
  };
  auto commit = [&](const SafetensorsWriter& writer, const std::string& file, const std::string& kind,
                    const std::vector<std::string>& names) {
    Written written = writer.write(folder + "/" + file);
    records.push_back({{"name", file}, {"kind", kind}, {"stage", worker.stage()}, {"replica", worker.replica()},
                       {"bytes", written.bytes}, {"crc32", written.crc32}, {"tensors", names}});
  };
  if (worker.replica() == 0) {
    SafetensorsWriter model, momentum;
    std::vector<std::string> model_names, momentum_names;
    for (const layers::NamedTensor& t : net.named_tensors()) {
      if (t.state) continue;
      model.add(t.name, std::span<const float>(slice(net.weights(), t)), t.dims);
      momentum.add(t.name, std::span<const float>(slice(worker.momentum(), t)), t.dims);
      model_names.push_back(t.name);
      momentum_names.push_back(t.name);
    }
    add_state(model, model_names);
    commit(model, stage + ".safetensors", "model", model_names);
    commit(momentum, stage + ".momentum.safetensors", "momentum", momentum_names);
  } else if (!bn_nodes.empty()) {
    SafetensorsWriter state;
    std::vector<std::string> names;
    add_state(state, names);
    commit(state, stage + ".replica" + std::to_string(worker.replica()) + ".safetensors", "replica", names);
  }
  return records;
}

// Runs `work`; if it throws, removes the unfinished checkpoint folder and says what is intact.
template <class Work>
void or_discard(const std::string& partial, const std::string& name, const std::string& dir, Work work) {
  try {
    work();
  } catch (const Error& e) {
    std::error_code ignored;
    fs::remove_all(partial, ignored);
    throw e.with_context("checkpoint " + name + " could not be written: ",
                         "; the checkpoints already in '" + dir + "' are intact (free some space or choose another "
                         "--checkpoint-dir, then run again with --resume)");
  }
}

void check_filesystem(const std::error_code& error, const std::string& what) {
  BATON_CHECK(!error, what << ": " << error.message());
}

// Why a checkpoint folder cannot be used, or "" when its manifest and every file it lists are whole.
std::string problem_with(const std::string& folder) {
  try {
    nlohmann::json manifest = read_manifest(folder);
    for (const auto& record : manifest.at("files")) {
      const std::string name = record.at("name").get<std::string>();
      const std::string file = folder + "/" + name;
      if (!fs::is_regular_file(file)) return "its file " + name + " is missing";
      Written found = checksum_file(file);
      if (found.bytes != record.at("bytes").get<int64_t>())
        return name + " has " + std::to_string(found.bytes) + " bytes, not the " +
               std::to_string(record.at("bytes").get<int64_t>()) + " its manifest records (truncated?)";
      if (found.crc32 != record.at("crc32").get<uint32_t>()) return name + " is corrupt (its CRC-32 is not the manifest's)";
    }
  } catch (const Error& e) {
    return e.message();
  } catch (const nlohmann::json::exception&) {
    return "its manifest.json does not list files with name, bytes and crc32";
  }
  return "";
}

// Complete checkpoint folders (step-<n>, with no .partial suffix), newest first.
std::vector<std::pair<int64_t, std::string>> complete_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code error;
  if (!fs::is_directory(dir, error)) return found;
  static const std::regex step(R"(step-(\d+))");
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, m, step)) found.emplace_back(std::stoll(m[1]), entry.path().string());
  }
  std::sort(found.rbegin(), found.rend());
  return found;
}

// The files of one checkpoint, each opened once, and which of them holds which tensor.
class CheckpointFiles {
 public:
  CheckpointFiles(std::string folder, const nlohmann::json& manifest) : folder_(std::move(folder)) {
    for (const auto& record : manifest.at("files")) {
      const std::string kind = record.at("kind").get<std::string>(), name = record.at("name").get<std::string>();
      const int replica = record.at("replica").get<int>();
      for (const auto& tensor : record.at("tensors")) {
        const std::string t = tensor.get<std::string>();
        if (kind == "model") model_[t] = name;
        if (kind == "momentum") momentum_[t] = name;
        if (kind == "replica") replica_state_[replica][t] = name;
      }
    }
  }

  void read_weights(const layers::NamedTensor& t, std::span<float> out) { read(model_, t, out); }
  void read_momentum(const layers::NamedTensor& t, std::span<float> out) { read(momentum_, t, out); }
  // A replica's own statistics when the checkpoint has that replica, else replica 0's.
  void read_state(const layers::NamedTensor& t, int replica, std::span<float> out) {
    auto own = replica_state_.find(replica);
    read(own != replica_state_.end() && own->second.count(t.name) ? own->second : model_, t, out);
  }

 private:
  void read(const std::map<std::string, std::string>& index, const layers::NamedTensor& t, std::span<float> out) {
    auto it = index.find(t.name);
    BATON_CHECK(it != index.end(), "checkpoint '" << folder_ << "' has no tensor '" << t.name
                                                  << "'; resume with the model it was written for");
    const SafetensorsFile& file = open(it->second);
    const SafetensorsEntry& entry = file.entry(t.name);
    BATON_CHECK(entry.shape == t.dims, "checkpoint '" << folder_ << "' holds '" << t.name << "' as "
                                                      << shape_text(entry.shape) << " but this model needs "
                                                      << shape_text(t.dims)
                                                      << "; resume with the model and input it was written for");
    file.read(t.name, out);
  }

  const SafetensorsFile& open(const std::string& name) {
    std::unique_ptr<SafetensorsFile>& file = open_[name];
    if (!file) file = std::make_unique<SafetensorsFile>(folder_ + "/" + name);
    return *file;
  }

  std::string folder_;
  std::map<std::string, std::string> model_, momentum_;
  std::map<int, std::map<std::string, std::string>> replica_state_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open_;
};

// "conv1.weight, fc3.bias and 4 more".
std::string list_of(const std::vector<std::string>& names) {
  std::string text;
  const size_t shown = std::min<size_t>(names.size(), 4);
  for (size_t i = 0; i < shown; ++i) text += (i ? ", " : "") + names[i];
  if (names.size() > shown) text += " and " + std::to_string(names.size() - shown) + " more";
  return text;
}

}  // namespace

std::string checkpoint_name(int64_t updates) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(updates));
  return name;
}

CheckpointDir::CheckpointDir(std::string path, int keep) : path_(std::move(path)), keep_(keep) {}

void CheckpointDir::prepare(comm::Collectives& collectives) const {
  if (collectives.is_root()) {
    std::error_code error;
    fs::create_directories(path_, error);
    BATON_CHECK(!error && fs::is_directory(path_), "cannot create the checkpoint folder '"
                                                       << path_ << "': " << (error ? error.message() : "not a folder")
                                                       << "; choose a writable --checkpoint-dir");
    const std::string probe = path_ + "/.baton-write-test";
    try {
      const char byte = 0;
      write_file_durably(probe, {std::as_bytes(std::span<const char>(&byte, 1))});
    } catch (const Error& e) {
      throw e.with_context("cannot write checkpoints to '" + path_ + "' (", "); choose a writable --checkpoint-dir");
    }
    fs::remove(probe, error);
  }
  collectives.broadcast("");  // no rank writes before the folder exists
}

WrittenCheckpoint CheckpointDir::write(Run& run, nlohmann::json manifest, int64_t updates) const {
  const std::string name = checkpoint_name(updates), partial = path_ + "/" + name + kPartial;
  comm::Collectives& collectives = run.collectives();
  if (collectives.is_root()) {
    or_discard(partial, name, path_, [&] {
      std::error_code error;
      fs::remove_all(partial, error);  // left by a job killed while writing this same checkpoint
      fs::create_directories(partial, error);
      check_filesystem(error, "cannot create '" + partial + "'");
    });
  }
  collectives.broadcast("");
  run.gather_momentum_shards();
  const int64_t batches_tracked = updates * manifest.at("parallel").at("microbatches").get<int64_t>();
  nlohmann::json records = nlohmann::json::array();
  or_discard(partial, name, path_, [&] {
    for (NetworkWorker* worker : run.local_workers())
      for (auto& record : write_worker(partial, *worker, batches_tracked)) records.push_back(std::move(record));
  });
  std::vector<std::string> each = collectives.gather(records.dump());
  // Every rank returns once rank 0 has committed: a launcher that ends the job when one rank
  // exits (after a stop) must not cut the commit short.
  WrittenCheckpoint written;
  if (collectives.is_root()) written = commit(manifest, each, updates);
  written.folder = collectives.broadcast(written.folder);
  return written;
}

WrittenCheckpoint CheckpointDir::commit(nlohmann::json manifest, const std::vector<std::string>& records,
                                        int64_t updates) const {
  const std::string name = checkpoint_name(updates), partial = path_ + "/" + name + kPartial;
  manifest["format"] = kFormat;
  manifest["version"] = kVersion;
  manifest["update"] = updates;
  manifest["files"] = nlohmann::json::array();
  WrittenCheckpoint written{path_ + "/" + name, 0};
  for (const std::string& list : records) {
    for (auto& record : nlohmann::json::parse(list)) {
      written.bytes += record.at("bytes").get<int64_t>();
      manifest["files"].push_back(std::move(record));
    }
  }
  const std::string& folder = written.folder;
  or_discard(partial, name, path_, [&] {
    const std::string text = manifest.dump(1) + "\n";
    write_file_durably(partial + "/manifest.json", {std::as_bytes(std::span<const char>(text.data(), text.size()))});
    sync_directory(partial);
    std::error_code error;
    fs::remove_all(folder, error);  // an unusable checkpoint of the same update, from an earlier run
    fs::rename(partial, folder, error);
    check_filesystem(error, "cannot rename '" + partial + "' to '" + folder + "'");
    sync_directory(path_);
  });
  prune();
  return written;
}

void CheckpointDir::prune() const {
  std::error_code error;
  std::vector<std::pair<int64_t, std::string>> complete = complete_checkpoints(path_);
  for (size_t i = size_t(keep_); i < complete.size(); ++i) fs::remove_all(complete[i].second, error);
  for (const fs::directory_entry& entry : fs::directory_iterator(path_, error))
    if (entry.is_directory() && ends_with(entry.path().filename().string(), kPartial)) fs::remove_all(entry.path(), error);
}

std::optional<std::string> CheckpointDir::newest_usable(comm::Collectives& collectives) const {
  std::string chosen;
  if (collectives.is_root()) {
    std::vector<std::string> unusable;
    for (const auto& [updates, folder] : complete_checkpoints(path_)) {
      const std::string problem = problem_with(folder);
      if (problem.empty()) {
        chosen = folder;
        break;
      }
      unusable.push_back(fs::path(folder).filename().string() + " (" + problem + ")");
    }
    std::string all;
    for (const std::string& u : unusable) all += (all.empty() ? "" : "; ") + u;
    BATON_CHECK(!chosen.empty() || unusable.empty(), "no usable checkpoint in '" << path_ << "': " << all
                                                         << "; remove the broken folders to start over");
    if (!unusable.empty()) {
      std::fprintf(stderr, "baton: warning: skipping unusable checkpoint(s) in '%s': %s; resuming from %s\n",
                   path_.c_str(), all.c_str(), fs::path(chosen).filename().c_str());
      std::fflush(stderr);
    }
  }
  chosen = collectives.broadcast(chosen);
  if (chosen.empty()) return std::nullopt;
  return chosen;
}

nlohmann::json read_manifest(const std::string& checkpoint) {
  const std::string path = checkpoint + "/manifest.json";
  std::ifstream in(path);
  BATON_CHECK(in.is_open(), "'" << checkpoint << "' has no manifest.json, so it is not a complete checkpoint");
  nlohmann::json manifest = nlohmann::json::parse(in, nullptr, false);
  BATON_CHECK(!manifest.is_discarded() && manifest.is_object(), "'" << path << "' is not valid JSON (truncated?)");
  BATON_CHECK(manifest.contains("format") && manifest["format"] == kFormat && manifest.contains("version") &&
                  manifest["version"] == kVersion,
              "'" << path << "' is not a version-" << kVersion << " baton checkpoint manifest");
  return manifest;
}

void load_checkpoint(Run& run, const std::string& checkpoint, const nlohmann::json& manifest) {
  CheckpointFiles files(checkpoint, manifest);
  for (NetworkWorker* worker : run.local_workers()) {
    layers::Network& net = worker->network();
    for (const layers::NamedTensor& t : net.named_tensors()) {
      if (t.state) {
        files.read_state(t, worker->replica(), slice(net.state(), t));
      } else {
        files.read_weights(t, slice(net.weights(), t));
        files.read_momentum(t, slice(worker->momentum(), t));
      }
    }
    worker->weights_loaded();
  }
}

void load_initial_weights(Run& run, const layers::ModelSpec& model, const std::string& path) {
  std::unique_ptr<SafetensorsFile> file;
  try {
    file = std::make_unique<SafetensorsFile>(path);
  } catch (const Error& e) {
    throw e.with_context("--init-from: ", "");
  }
  std::map<std::string, std::vector<int64_t>> expected;
  std::set<std::string> optional;  // PyTorch's batch counters: accepted, not needed
  for (const layers::ModelTensor& t : layers::model_tensors(model)) {
    expected[t.name] = t.spec.dims;
    if (ends_with(t.name, ".running_mean")) optional.insert(without_tail(t.name, ".running_mean") + kBatchesTracked);
  }
  std::vector<std::string> missing, extra, misshaped;
  for (const auto& [name, dims] : expected) {
    if (!file->has(name)) missing.push_back(name);
    else if (file->entry(name).shape != dims)
      misshaped.push_back(name + " (" + shape_text(file->entry(name).shape) + " in the file, " + shape_text(dims) + " here)");
  }
  for (const auto& [name, entry] : file->tensors())
    if (!expected.count(name) && !optional.count(name)) extra.push_back(name);
  std::string problems;
  auto note = [&](const std::vector<std::string>& names, const std::string& what) {
    if (!names.empty()) problems += (problems.empty() ? "" : "; ") + what + " " + list_of(names);
  };
  note(missing, "missing");
  note(extra, "extra");
  note(misshaped, "mis-shaped");
  BATON_CHECK(problems.empty(), "--init-from '" << path << "' does not fit " << model.name << ": " << problems
                                                << "; save the state_dict() of the same model (bench/pytorch_models.py "
                                                   "builds it under these names)");
  for (NetworkWorker* worker : run.local_workers()) {
    layers::Network& net = worker->network();
    for (const layers::NamedTensor& t : net.named_tensors())
      file->read(t.name, slice(t.state ? net.state() : net.weights(), t));
    worker->weights_loaded();
  }
}

void export_model(const std::string& checkpoint_or_dir, const std::string& output) {
  std::string checkpoint = checkpoint_or_dir;
  if (!fs::exists(checkpoint_or_dir + "/manifest.json")) {
    BATON_CHECK(fs::is_directory(checkpoint_or_dir), "'" << checkpoint_or_dir
                                                         << "' is not a folder; give baton export the --checkpoint-dir "
                                                            "of a run or one of its step-* folders");
    auto collectives = comm::single_process_collectives();
    std::optional<std::string> newest = CheckpointDir(checkpoint_or_dir, 1).newest_usable(*collectives);
    BATON_CHECK(newest, "'" << checkpoint_or_dir << "' holds no checkpoint (no step-* folder with a manifest.json)");
    checkpoint = *newest;
  }
  const std::string problem = problem_with(checkpoint);
  BATON_CHECK(problem.empty(), "checkpoint '" << checkpoint << "' cannot be exported: " << problem);
  const nlohmann::json manifest = read_manifest(checkpoint);
  std::vector<std::unique_ptr<SafetensorsFile>> stages;
  SafetensorsWriter writer;
  int64_t parameters = 0;
  for (const auto& record : manifest.at("files")) {
    if (record.at("kind") != "model") continue;
    stages.push_back(std::make_unique<SafetensorsFile>(checkpoint + "/" + record.at("name").get<std::string>()));
    for (const auto& [name, entry] : stages.back()->tensors()) {
      writer.add(name, entry.dtype, entry.shape, stages.back()->bytes(name));
      if (entry.dtype == DType::f32 && !ends_with(name, "running_mean") && !ends_with(name, "running_var"))
        parameters += int64_t((entry.end - entry.begin) / sizeof(float));
    }
  }
  writer.set_metadata("format", "pt");
  writer.set_metadata("model", manifest.at("model").get<std::string>());
  writer.set_metadata("input", to_string(manifest.at("input").get<Dims>()));
  writer.set_metadata("classes", std::to_string(manifest.at("classes").get<int>()));
  writer.set_metadata("mean", manifest.at("normalization").at("mean").dump());
  writer.set_metadata("std", manifest.at("normalization").at("std").dump());
  writer.set_metadata("update", std::to_string(manifest.at("update").get<int64_t>()));
  writer.write(output);
  std::printf("baton: exported %s (%lld parameters) from %s to %s\n", manifest.at("model").get<std::string>().c_str(),
              static_cast<long long>(parameters), checkpoint.c_str(), output.c_str());
}

}  // namespace baton
