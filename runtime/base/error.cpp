// Implementation of baton::Error and the rank-tagged error report.
#include "runtime/base/error.hpp"

#include <atomic>
#include <cstdio>
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

// A message quotes what the user gave, which may hold a newline or other control characters:
// they are written as escapes, so that the report stays one line.
std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
    else {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += escaped;
    }
  }
  return out;
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
  line << ": " << one_line(error.message()) << " [" << error.location() << "]";
  return line.str();
}

void raise_error(const char* file, int line, const std::string& message) {
  throw Error(message, file, line);
}

}  // namespace baton
