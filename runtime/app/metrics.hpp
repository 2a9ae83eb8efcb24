// Run reporting: a JSON-lines metrics file (one object per event, each with an "event" field)
// and a one-line progress bar that rank 0 draws only when stdout is a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace baton {

class MetricsLog {
 public:
  MetricsLog() = default;  // disabled
  // "" disables. keep_bytes < 0 truncates the file; otherwise it is cut back to its first
  // keep_bytes bytes (what it held at a checkpoint, so a resumed run logs nothing twice) and
  // appended to.
  explicit MetricsLog(const std::string& path, int64_t keep_bytes = -1);
  void write(const nlohmann::json& event);  // flushed at once, so a crash loses nothing
  bool enabled() const { return out_.is_open(); }
  int64_t bytes();  // written so far

 private:
  std::string path_;
  std::ofstream out_;
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
