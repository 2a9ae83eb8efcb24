// Run reporting: a JSON-lines metrics file (one object per event, each with an "event" field),
// optionally mirrored as TensorBoard scalars, and a one-line progress bar that rank 0 draws only
// when stdout is a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/app/tensorboard.hpp"

namespace baton {

class MetricsLog {
 public:
  MetricsLog() = default;  // disabled
  // "" disables. keep_bytes < 0 truncates the file; otherwise it is cut back to its first
  // keep_bytes bytes (what it held at a checkpoint, so a resumed run logs nothing twice) and
  // appended to.
  explicit MetricsLog(const std::string& path, int64_t keep_bytes = -1);
  // Step and epoch events also become TensorBoard scalars in `dir`: each number of the event is
  // the curve "<event>/<field>" (arrays: "<event>/<field>/<index>") at step = its "update".
  // `resumed_after`: the updates done at the checkpoint a resumed run starts from (-1: a new run).
  void mirror_to_tensorboard(const std::string& dir, int64_t resumed_after = -1);
  void write(const nlohmann::json& event);  // flushed at once, so a crash loses nothing
  bool enabled() const { return out_.is_open() || tensorboard_; }
  int64_t bytes();  // written so far

 private:
  void write_scalars(const nlohmann::json& event);

  std::string path_;
  std::ofstream out_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

bool stdout_is_terminal();

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled);
  void update(int64_t done, const std::string& status);
  void clear();  // erase the bar before a normal line is printed

 private:
  std::string label_;
  int64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace baton
