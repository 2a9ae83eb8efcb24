// Implementation of the TensorBoard event file: CRC-32C, TFRecord framing and the hand-encoded
// Event { wall_time = 1, step = 2, file_version = 3, summary = 5 } protobuf.
#include "runtime/app/tensorboard.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "runtime/base/error.hpp"

namespace baton {
namespace {

constexpr uint32_t kCrc32cPolynomial = 0x82F63B78u;  // Castagnoli, bit-reflected

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ kCrc32cPolynomial : crc >> 1;
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// TFRecord stores CRCs rotated and offset, so that a CRC over bytes that hold CRCs stays strong.
uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

// Protobuf wire types used here.
enum class WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void append_little_endian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out += char((value >> (8 * i)) & 0xFF);
}

void append_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += char((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out += char(value);
}

void append_key(std::string& out, uint32_t field, WireType type) {
  append_varint(out, (uint64_t(field) << 3) | uint32_t(type));
}

void append_int64_field(std::string& out, uint32_t field, int64_t value) {
  append_key(out, field, WireType::kVarint);
  append_varint(out, uint64_t(value));  // negative numbers take ten bytes, as protobuf's int64 does
}

void append_double_field(std::string& out, uint32_t field, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  append_key(out, field, WireType::kFixed64);
  append_little_endian(out, bits, 8);
}

void append_float_field(std::string& out, uint32_t field, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  append_key(out, field, WireType::kFixed32);
  append_little_endian(out, bits, 4);
}

void append_bytes_field(std::string& out, uint32_t field, std::string_view bytes) {
  append_key(out, field, WireType::kLengthDelimited);
  append_varint(out, bytes.size());
  out += bytes;
}

std::string file_version_event(double wall_time) {
  std::string event;
  append_double_field(event, 1, wall_time);
  append_bytes_field(event, 3, "brain.Event:2");
  return event;
}

// Event { wall_time, step, summary = Summary { value = Value { tag, simple_value } } }.
std::string scalar_event(const std::string& tag, int64_t step, double value, double wall_time) {
  std::string summary_value;
  append_bytes_field(summary_value, 1, tag);
  append_float_field(summary_value, 2, float(value));
  std::string summary;
  append_bytes_field(summary, 1, summary_value);
  std::string event;
  append_double_field(event, 1, wall_time);
  append_int64_field(event, 2, step);
  append_bytes_field(event, 5, summary);
  return event;
}

// Event { wall_time, step, session_log = 7: SessionLog { status = 1: START (1) } }.
std::string session_start_event(int64_t step, double wall_time) {
  std::string session_log;
  append_int64_field(session_log, 1, 1);
  std::string event;
  append_double_field(event, 1, wall_time);
  append_int64_field(event, 2, step);
  append_bytes_field(event, 7, session_log);
  return event;
}

std::string host_name() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

std::string events_file_name(int64_t unix_seconds) {
  return "events.out.tfevents." + std::to_string(unix_seconds) + "." + host_name() + "." +
         std::to_string(::getpid()) + ".baton";
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) crc = kCrc32cTable[(crc ^ byte) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  BATON_CHECK(!dir.empty(), "the TensorBoard folder is empty; give --tensorboard a folder to write to");
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  BATON_CHECK(!error, "could not create the TensorBoard folder '" << dir << "': " << error.message()
                                                                  << "; choose another --tensorboard");
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  path_ = (std::filesystem::path(dir) / events_file_name(int64_t(now))).string();
  out_.open(path_, std::ios::binary | std::ios::trunc);
  BATON_CHECK(out_.is_open(), "could not create the TensorBoard events file '" << path_ << "': " << std::strerror(errno)
                                                                              << "; choose another --tensorboard");
  write_record(file_version_event(now));
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (!out_.good()) return;  // the failure was already thrown
  out_.flush();
  if (!out_.good())
    std::fprintf(stderr, "baton: could not write the TensorBoard events file '%s': %s; its last points are lost\n",
                 path_.c_str(), std::strerror(errno));
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value, double wall_time) {
  write_record(scalar_event(tag, step, value, wall_time));
}

void TensorBoardWriter::restart(int64_t step, double wall_time) {
  write_record(session_start_event(step, wall_time));
  flush();
}

void TensorBoardWriter::flush() {
  out_.flush();
  check_written();
}

// TFRecord: uint64 length, masked CRC of those 8 bytes, the event, masked CRC of the event.
void TensorBoardWriter::write_record(const std::string& event) {
  std::string length;
  append_little_endian(length, event.size(), 8);
  std::string record = length;
  append_little_endian(record, masked_crc32c(length), 4);
  record += event;
  append_little_endian(record, masked_crc32c(event), 4);
  out_.write(record.data(), std::streamsize(record.size()));
  check_written();
}

void TensorBoardWriter::check_written() {
  BATON_CHECK(out_.good(), "could not write the TensorBoard events file '"
                               << path_ << "': " << std::strerror(errno)
                               << "; free some space or choose another --tensorboard");
}

}  // namespace baton
