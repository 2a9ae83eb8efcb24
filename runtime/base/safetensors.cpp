// Implementation of safetensors writing and reading, and of durable file writes.
#include "runtime/base/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "runtime/base/error.hpp"

namespace baton {
namespace {

constexpr size_t kMaxHeaderBytes = size_t(100) << 20;  // the format's own limit

const char* dtype_name(DType dtype) { return dtype == DType::f32 ? "F32" : "I64"; }
size_t size_of(DType dtype) { return dtype == DType::f32 ? 4 : 8; }

// The bytes a tensor of this shape holds, or nothing where that overflows 64 bits (a corrupt header
// can claim any dimensions). A zero dimension empties the tensor whatever the others say.
std::optional<size_t> byte_count(const std::vector<int64_t>& shape, DType dtype) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  size_t bytes = size_of(dtype);
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(bytes, size_t(d), &bytes)) return std::nullopt;
  return bytes;
}

std::string system_reason() { return std::strerror(errno); }

uint32_t crc32_of(uint32_t crc, std::span<const std::byte> bytes) {
  // zlib's crc32 takes at most 4 GiB at a time.
  for (size_t done = 0; done < bytes.size();) {
    const uInt chunk = uInt(std::min<size_t>(bytes.size() - done, size_t(1) << 30));
    crc = uint32_t(::crc32(uLong(crc), reinterpret_cast<const Bytef*>(bytes.data() + done), chunk));
    done += chunk;
  }
  return crc;
}

// Closes the descriptor on every path out.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, const std::byte* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    BATON_CHECK(written > 0, "could not write '" << path << "': " << system_reason());
    data += written;
    size -= size_t(written);
  }
}

}  // namespace

Written write_file_durably(const std::string& path, const std::vector<std::span<const std::byte>>& pieces) {
  const std::string temporary = path + ".tmp";
  Written written;
  FileDescriptor file{::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  BATON_CHECK(file.fd >= 0, "could not create '" << temporary << "': " << system_reason());
  try {
    for (std::span<const std::byte> piece : pieces) {
      write_all(file.fd, piece.data(), piece.size(), temporary);
      written.bytes += int64_t(piece.size());
      written.crc32 = crc32_of(written.crc32, piece);
    }
    BATON_CHECK(::fsync(file.fd) == 0, "could not write '" << temporary << "' to disk: " << system_reason());
    const int closed = ::close(file.fd);
    file.fd = -1;
    BATON_CHECK(closed == 0, "could not write '" << temporary << "': " << system_reason());
    BATON_CHECK(::rename(temporary.c_str(), path.c_str()) == 0,
                "could not rename '" << temporary << "' to '" << path << "': " << system_reason());
  } catch (const Error&) {
    ::unlink(temporary.c_str());
    throw;
  }
  return written;
}

Written checksum_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BATON_CHECK(in.is_open(), "cannot read '" << path << "': it does not exist or is not readable");
  Written sum;
  std::vector<char> chunk(size_t(1) << 20);
  while (in) {
    in.read(chunk.data(), std::streamsize(chunk.size()));
    const size_t got = size_t(in.gcount());
    sum.bytes += int64_t(got);
    sum.crc32 = crc32_of(sum.crc32, std::as_bytes(std::span<const char>(chunk.data(), got)));
  }
  BATON_CHECK(in.eof(), "could not read '" << path << "' to its end");
  return sum;
}

void sync_directory(const std::string& path) {
  FileDescriptor dir{::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  BATON_CHECK(dir.fd >= 0, "could not open the folder '" << path << "': " << system_reason());
  BATON_CHECK(::fsync(dir.fd) == 0, "could not write the folder '" << path << "' to disk: " << system_reason());
}

void SafetensorsWriter::add(const std::string& name, std::span<const float> values, const std::vector<int64_t>& shape) {
  add(name, DType::f32, shape, std::as_bytes(values));
}

void SafetensorsWriter::add(const std::string& name, std::span<const int64_t> values,
                            const std::vector<int64_t>& shape) {
  add(name, DType::i64, shape, std::as_bytes(values));
}

void SafetensorsWriter::add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            std::span<const std::byte> bytes) {
  const std::optional<size_t> expected = byte_count(shape, dtype);
  BATON_CHECK(expected == bytes.size(),
              "tensor '" << name << "' has " << bytes.size() / size_of(dtype) << " values but its shape holds "
                         << (expected ? std::to_string(*expected / size_of(dtype)) : "more than 2^64 bytes"));
  tensors_.push_back({name, dtype, shape, bytes.data(), bytes.size()});
}

Written SafetensorsWriter::write(const std::string& path) const {
  // 8-byte tensors first, so that every tensor starts aligned to its element size.
  std::vector<const Pending*> order;
  for (const Pending& t : tensors_) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(),
                   [](const Pending* a, const Pending* b) { return size_of(a->dtype) > size_of(b->dtype); });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  size_t offset = 0;
  for (const Pending* t : order) {
    header[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->size}}};
    offset += t->size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  uint64_t length = text.size();
  std::byte length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = std::byte((length >> (8 * i)) & 0xff);
  std::vector<std::span<const std::byte>> pieces{std::span<const std::byte>(length_bytes, 8),
                                                 std::as_bytes(std::span<const char>(text.data(), text.size()))};
  for (const Pending* t : order) pieces.emplace_back(t->bytes, t->size);
  return write_file_durably(path, pieces);
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  BATON_CHECK(in.is_open(), "cannot read '" << path << "': it does not exist or is not readable");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0);
  bytes_.resize(size_t(std::max<std::streamoff>(size, 0)));
  in.read(reinterpret_cast<char*>(bytes_.data()), std::streamsize(bytes_.size()));
  BATON_CHECK(in.good() || bytes_.empty(), "cannot read '" << path << "'");
  const std::string corrupt = "'" + path + "' is not a valid safetensors file: ";
  BATON_CHECK(bytes_.size() >= 8, corrupt << "it has " << bytes_.size() << " bytes, fewer than its 8-byte header length");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | uint64_t(bytes_[size_t(i)]);
  BATON_CHECK(length <= kMaxHeaderBytes && length <= bytes_.size() - 8,
              corrupt << "its header claims " << length << " bytes but the file has " << bytes_.size() << " (truncated?)");
  data_start_ = 8 + size_t(length);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes_.data()) + 8,
                                   reinterpret_cast<const char*>(bytes_.data()) + data_start_);
  } catch (const nlohmann::json::exception&) {
    BATON_FAIL(corrupt << "its header is not JSON");
  }
  BATON_CHECK(header.is_object(), corrupt << "its header is not a JSON object");
  const size_t data_size = bytes_.size() - data_start_;
  size_t covered = 0;
  try {
    for (const auto& [name, value] : header.items()) {
      if (name == "__metadata__") {
        metadata_ = value.get<std::map<std::string, std::string>>();
        continue;
      }
      const std::string dtype = value.at("dtype").get<std::string>();
      BATON_CHECK(dtype == "F32" || dtype == "I64",
                  corrupt << "tensor '" << name << "' is " << dtype << "; baton reads F32 and I64 tensors");
      const nlohmann::json &shape = value.at("shape"), &offsets = value.at("data_offsets");
      auto whole_numbers = [](const nlohmann::json& list) {  // a float such as 1e20 would not convert
        return list.is_array() && std::all_of(list.begin(), list.end(), [](const auto& v) { return v.is_number_integer(); });
      };
      BATON_CHECK(whole_numbers(shape) && whole_numbers(offsets) && offsets.size() == 2,
                  corrupt << "tensor '" << name << "' has a shape or data_offsets that are not whole numbers");
      SafetensorsEntry entry{dtype == "F32" ? DType::f32 : DType::i64, shape.get<std::vector<int64_t>>(),
                             offsets[0].get<size_t>(), offsets[1].get<size_t>()};
      for (int64_t d : entry.shape) BATON_CHECK(d >= 0, corrupt << "tensor '" << name << "' has a negative dimension");
      BATON_CHECK(entry.begin <= entry.end && entry.end <= data_size,
                  corrupt << "tensor '" << name << "' lies outside the file's " << data_size << " data bytes (truncated?)");
      const std::optional<size_t> expected = byte_count(entry.shape, entry.dtype);
      BATON_CHECK(expected, corrupt << "tensor '" << name << "' has a shape of more than 2^64 bytes");
      BATON_CHECK(entry.end - entry.begin == *expected,
                  corrupt << "tensor '" << name << "' has " << entry.end - entry.begin << " bytes for its shape");
      covered += entry.end - entry.begin;
      entries_.emplace(name, std::move(entry));
    }
  } catch (const nlohmann::json::exception&) {
    BATON_FAIL(corrupt << "its header does not describe tensors as dtype, shape and data_offsets");
  }
  BATON_CHECK(covered == data_size,
              corrupt << "its tensors cover " << covered << " of its " << data_size << " data bytes");
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  BATON_CHECK(it != entries_.end(), "'" << path_ << "' has no tensor '" << name << "'");
  return it->second;
}

std::span<const std::byte> SafetensorsFile::bytes(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  return {bytes_.data() + data_start_ + e.begin, e.end - e.begin};
}

void SafetensorsFile::read_bytes(const std::string& name, DType dtype, void* out, size_t size) const {
  const SafetensorsEntry& e = entry(name);
  BATON_CHECK(e.dtype == dtype, "tensor '" << name << "' of '" << path_ << "' is " << dtype_name(e.dtype) << ", not "
                                           << dtype_name(dtype));
  BATON_CHECK(e.end - e.begin == size, "tensor '" << name << "' of '" << path_ << "' has " << (e.end - e.begin) / size_of(dtype)
                                                  << " values, not " << size / size_of(dtype));
  if (size > 0) std::memcpy(out, bytes_.data() + data_start_ + e.begin, size);
}

void SafetensorsFile::read(const std::string& name, std::span<float> out) const {
  read_bytes(name, DType::f32, out.data(), out.size_bytes());
}

void SafetensorsFile::read(const std::string& name, std::span<int64_t> out) const {
  read_bytes(name, DType::i64, out.data(), out.size_bytes());
}

}  // namespace baton
