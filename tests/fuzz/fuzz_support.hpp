// Helpers shared by the libFuzzer targets: the readers under test take paths, so each run writes its
// input to scratch files in a per-process folder on tmpfs (/dev/shm, else the temporary folder),
// removed when the process ends. Nothing here calls MPI.
#pragma once

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace baton::fuzz {

namespace fs = std::filesystem;

using Bytes = std::vector<uint8_t>;

// A folder of its own for this process; emptied and removed at exit.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code error;
    fs::path base = fs::is_directory("/dev/shm", error) ? fs::path("/dev/shm") : fs::temp_directory_path();
    path_ = base / ("baton-fuzz-" + std::to_string(::getpid()));
    fs::remove_all(path_, error);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code error;
    fs::remove_all(path_, error);
  }
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline const ScratchDir& scratch() {
  static const ScratchDir dir;
  return dir;
}

// Writes bytes to path (replacing it); aborts on failure, which would be the harness's fault.
inline void write_file(const std::string& path, std::span<const uint8_t> bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t wrote = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (wrote <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += static_cast<size_t>(wrote);
  }
  ::close(fd);
}

// The bytes as one gzip member (level 1: the harness should spend its time in the reader).
inline Bytes gzip(std::span<const uint8_t> bytes) {
  z_stream stream{};
  if (deflateInit2(&stream, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  Bytes out(deflateBound(&stream, bytes.size()));
  stream.next_in = const_cast<Bytef*>(bytes.data());
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  if (deflate(&stream, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// The memory limit every data reader runs under: well inside libFuzzer's default -rss_limit_mb=2048
// and -malloc_limit_mb, so that an allocation over it is a finding, not the limit doing its job.
constexpr int64_t kFuzzMaxDataBytes = int64_t{64} << 20;

}  // namespace baton::fuzz
