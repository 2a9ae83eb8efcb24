// Implementation of the metrics file and the terminal progress bar.
#include "runtime/app/metrics.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "runtime/base/error.hpp"

namespace baton {

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

int64_t MetricsLog::bytes() { return enabled() ? int64_t(out_.tellp()) : 0; }

void MetricsLog::write(const nlohmann::json& event) {
  if (!enabled()) return;
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
