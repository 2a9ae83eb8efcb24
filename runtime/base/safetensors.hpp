// Safetensors files, the tensor format PyTorch users exchange weights in: an 8-byte little-endian
// header length, a JSON header giving each tensor's dtype, shape and byte range (plus string
// metadata), then the bytes. Written durably (temporary file, fsync, rename); read with every
// offset, size and dtype checked, so a truncated or corrupt file is one clear error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace baton {

enum class DType { f32, i64 };

// A file's size and CRC-32 (zlib's), as a checkpoint manifest records them.
struct Written {
  int64_t bytes = 0;
  uint32_t crc32 = 0;
};

struct SafetensorsEntry {
  DType dtype;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte range in the data section
};

// Collects tensors (borrowed: they must stay alive until write()) and writes them in one file.
class SafetensorsWriter {
 public:
  void add(const std::string& name, std::span<const float> values, const std::vector<int64_t>& shape);
  void add(const std::string& name, std::span<const int64_t> values, const std::vector<int64_t>& shape);
  void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape, std::span<const std::byte> bytes);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Writes `path` durably; throws naming the file and the system's reason (e.g. "No space left
  // on device"), leaving no partial file under that name.
  Written write(const std::string& path) const;

 private:
  struct Pending {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const std::byte* bytes;
    size_t size;
  };
  std::vector<Pending> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A whole safetensors file in memory.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws: missing, truncated or corrupt

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& tensors() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;  // throws if absent
  std::span<const std::byte> bytes(const std::string& name) const;
  // Copies a tensor's values out (any alignment); throws if absent, of another dtype or size.
  void read(const std::string& name, std::span<float> out) const;
  void read(const std::string& name, std::span<int64_t> out) const;

 private:
  std::string path_;
  void read_bytes(const std::string& name, DType dtype, void* out, size_t size) const;
  std::vector<std::byte> bytes_;  // the whole file
  size_t data_start_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes the pieces, in order, to `path` through a temporary file beside it: write, fsync,
// rename. Throws naming the file and the system's reason; no partial file keeps the name.
Written write_file_durably(const std::string& path, const std::vector<std::span<const std::byte>>& pieces);
// Size and CRC-32 of a file as it is on disk; throws if it cannot be read.
Written checksum_file(const std::string& path);
// fsync of a directory, so that renames inside it survive a crash.
void sync_directory(const std::string& path);

}  // namespace baton
