// Implementation of the metrics file and the terminal progress bar.
#include "runtime/app/metrics.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "runtime/base/error.hpp"

namespace baton {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, int64_t keep_bytes) {
  if (path.empty()) return;
  std::error_code error;
  if (keep_bytes >= 0 && std::filesystem::exists(path, error) &&
      int64_t(std::filesystem::file_size(path, error)) >= keep_bytes)
    std::filesystem::resize_file(path, uintmax_t(keep_bytes), error);
  path_ = path;
  out_.open(path, keep_bytes < 0 ? std::ios::trunc : std::ios::app);
  BATON_CHECK(out_.is_open(), "cannot write the metrics file '" << path << "'; check that its folder exists and is writable");
}

int64_t MetricsLog::bytes() { return out_.is_open() ? int64_t(out_.tellp()) : 0; }

void MetricsLog::mirror_to_tensorboard(const std::string& dir, int64_t resumed_after) {
  if (dir.empty()) return;
  tensorboard_ = std::make_unique<TensorBoardWriter>(dir);
  if (resumed_after >= 0) tensorboard_->restart(resumed_after + 1, now_seconds());
}

void MetricsLog::write_scalars(const nlohmann::json& event) {
  const std::string kind = event.at("event").get<std::string>();
  if ((kind != "step" && kind != "epoch") || !event.contains("update")) return;
  const int64_t step = event.at("update").get<int64_t>();
  const double now = now_seconds();
  auto point = [&](const std::string& tag, const nlohmann::json& value) {
    if (value.is_number()) tensorboard_->scalar(tag, step, value.get<double>(), now);
  };
  for (const auto& [field, value] : event.items()) {
    if (field == "update" || field == "epoch") continue;
    point(kind + "/" + field, value);
    if (value.is_array())
      for (size_t i = 0; i < value.size(); ++i) point(kind + "/" + field + "/" + std::to_string(i), value[i]);
  }
  tensorboard_->flush();
}

void MetricsLog::write(const nlohmann::json& event) {
  if (tensorboard_) write_scalars(event);
  if (!out_.is_open()) return;
  out_ << event.dump() << '\n';
  out_.flush();
  BATON_CHECK(out_.good(), "could not write the metrics file '" << path_ << "': " << std::strerror(errno)
                                                                << "; free some space or choose another --metrics");
}

bool stdout_is_terminal() { return isatty(STDOUT_FILENO) == 1; }

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled && total > 0) {}

void ProgressBar::update(int64_t done, const std::string& status) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int width = 30;
  int filled = int(width * done / total_);
  std::printf("\r%s [%s%s] %lld/%lld %s\033[K", label_.c_str(), std::string(filled, '=').c_str(),
              std::string(width - filled, ' ').c_str(), static_cast<long long>(done), static_cast<long long>(total_),
              status.c_str());
  std::fflush(stdout);
}

void ProgressBar::clear() {
  if (!enabled_) return;
  std::printf("\r\033[K");
  std::fflush(stdout);
}

}  // namespace baton
