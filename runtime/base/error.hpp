// Errors that carry the MPI rank, file and line where they were raised.
// BATON_CHECK(cond, a << b) throws baton::Error with a one-sentence message; main() prints it
// and aborts the whole job, so a failing rank never leaves its peers hanging.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace baton {

class Error : public std::runtime_error {
 public:
  Error(std::string message, const char* file, int line);
  // The same error with more said before and after its message; the location is kept.
  Error with_context(const std::string& before, const std::string& after) const;
  const std::string& message() const { return message_; }
  const std::string& location() const { return location_; }  // "file.cpp:42"

 private:
  Error(std::string message, std::string location);
  std::string message_;
  std::string location_;
};

// The rank written into error reports; -1 until MPI is up.
void set_error_rank(int rank);
int error_rank();

// "baton (rank 3): <message> [file.cpp:42]" — the line main() prints for an error.
std::string describe(const Error& error);

[[noreturn]] void raise_error(const char* file, int line, const std::string& message);

}  // namespace baton

#define BATON_CHECK(condition, message)                                              \
  do {                                                                               \
    if (!(condition)) {                                                              \
      std::ostringstream baton_check_stream_;                                        \
      baton_check_stream_ << message;                                                \
      ::baton::raise_error(__FILE__, __LINE__, baton_check_stream_.str());           \
    }                                                                                \
  } while (false)

#define BATON_FAIL(message) BATON_CHECK(false, message)
