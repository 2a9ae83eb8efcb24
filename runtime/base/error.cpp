// Implementation of baton::Error and the rank-tagged error report.
#include "runtime/base/error.hpp"

#include <atomic>
#include <cstring>

namespace baton {
namespace {
std::atomic<int> g_error_rank{-1};

std::string short_location(const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  std::ostringstream location;
  location << (slash ? slash + 1 : file) << ":" << line;
  return location.str();
}
}  // namespace

Error::Error(std::string message, const char* file, int line)
    : std::runtime_error(message), message_(std::move(message)), location_(short_location(file, line)) {}

Error::Error(std::string message, std::string location)
    : std::runtime_error(message), message_(std::move(message)), location_(std::move(location)) {}

Error Error::with_context(const std::string& before, const std::string& after) const {
  return Error(before + message_ + after, location_);
}

void set_error_rank(int rank) { g_error_rank = rank; }
int error_rank() { return g_error_rank; }

std::string describe(const Error& error) {
  std::ostringstream line;
  line << "baton";
  if (error_rank() >= 0) line << " (rank " << error_rank() << ")";
  line << ": " << error.message() << " [" << error.location() << "]";
  return line.str();
}

void raise_error(const char* file, int line, const std::string& message) {
  throw Error(message, file, line);
}

}  // namespace baton
