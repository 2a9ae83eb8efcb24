// TensorBoard event files: CRC-32C meets its check value, every record a writer makes parses back
// (length, both masked CRCs, the Event fields) and a file that cannot be written is one sentence.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <vector>

#include "runtime/app/tensorboard.hpp"
#include "runtime/base/error.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

// A fresh folder under /tmp, removed with everything in it when the test ends.
struct ScratchFolder {
  explicit ScratchFolder(const std::string& name)
      : path(fs::temp_directory_path() / ("baton_tensorboard_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchFolder() { fs::remove_all(path); }
  fs::path path;
};

// ---- A small reader, written from the TFRecord and protobuf specifications --------------------

uint64_t little_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes.size(); ++i) value |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return value;
}

uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The events of a TFRecord file, each checked against its length and both CRCs.
std::vector<std::string> read_records(const std::string& path) {
  const std::string bytes = file_bytes(path);
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 12) throw std::runtime_error("truncated record header at byte " + std::to_string(at));
    const std::string_view length_bytes(bytes.data() + at, 8);
    if (little_endian(std::string_view(bytes.data() + at + 8, 4)) != masked(crc32c(length_bytes)))
      throw std::runtime_error("bad length CRC at byte " + std::to_string(at));
    const uint64_t length = little_endian(length_bytes);
    at += 12;
    if (bytes.size() - at < length + 4) throw std::runtime_error("truncated record at byte " + std::to_string(at));
    const std::string_view event(bytes.data() + at, length);
    if (little_endian(std::string_view(bytes.data() + at + length, 4)) != masked(crc32c(event)))
      throw std::runtime_error("bad event CRC at byte " + std::to_string(at));
    records.emplace_back(event);
    at += length + 4;
  }
  return records;
}

struct ProtoField {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  uint64_t bits = 0;   // varint, fixed64 or fixed32 value
  std::string bytes;   // length-delimited value
};

uint64_t read_varint(std::string_view message, size_t& at) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at >= message.size()) throw std::runtime_error("truncated varint");
    const auto byte = static_cast<unsigned char>(message[at++]);
    value |= uint64_t(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return value;
  }
  throw std::runtime_error("varint longer than ten bytes");
}

std::string_view take(std::string_view message, size_t& at, uint64_t count) {
  if (message.size() - at < count) throw std::runtime_error("field runs past the end of its message");
  const std::string_view taken = message.substr(at, count);
  at += count;
  return taken;
}

std::vector<ProtoField> parse_fields(std::string_view message) {
  std::vector<ProtoField> fields;
  size_t at = 0;
  while (at < message.size()) {
    ProtoField field;
    const uint64_t key = read_varint(message, at);
    field.number = uint32_t(key >> 3);
    field.wire_type = uint32_t(key & 7);
    if (field.wire_type == 0) field.bits = read_varint(message, at);
    else if (field.wire_type == 1) field.bits = little_endian(take(message, at, 8));
    else if (field.wire_type == 5) field.bits = little_endian(take(message, at, 4));
    else if (field.wire_type == 2) field.bytes = take(message, at, read_varint(message, at));
    else throw std::runtime_error("unexpected wire type " + std::to_string(field.wire_type));
    fields.push_back(std::move(field));
  }
  return fields;
}

struct ScalarValue {
  std::string tag;
  float simple_value = 0;
};

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<ScalarValue> values;
};

template <typename Number, typename Bits>
Number from_bits(Bits bits) {
  static_assert(sizeof(Number) == sizeof(Bits));
  Number number;
  std::memcpy(&number, &bits, sizeof(number));
  return number;
}

void expect_wire_type(const ProtoField& field, uint32_t wire_type) {
  if (field.wire_type != wire_type)
    throw std::runtime_error("field " + std::to_string(field.number) + " has wire type " +
                             std::to_string(field.wire_type) + ", not " + std::to_string(wire_type));
}

ScalarValue decode_summary_value(std::string_view message) {
  ScalarValue value;
  for (const ProtoField& field : parse_fields(message)) {
    if (field.number == 1) {
      expect_wire_type(field, 2);
      value.tag = field.bytes;
    } else if (field.number == 2) {
      expect_wire_type(field, 5);
      value.simple_value = from_bits<float>(uint32_t(field.bits));
    } else {
      throw std::runtime_error("unexpected Summary.Value field " + std::to_string(field.number));
    }
  }
  return value;
}

DecodedEvent decode_event(std::string_view message) {
  DecodedEvent event;
  for (const ProtoField& field : parse_fields(message)) {
    if (field.number == 1) {
      expect_wire_type(field, 1);
      event.wall_time = from_bits<double>(field.bits);
    } else if (field.number == 2) {
      expect_wire_type(field, 0);
      event.step = int64_t(field.bits);
    } else if (field.number == 3) {
      expect_wire_type(field, 2);
      event.file_version = field.bytes;
    } else if (field.number == 5) {
      expect_wire_type(field, 2);
      for (const ProtoField& summary_field : parse_fields(field.bytes)) {
        if (summary_field.number != 1) throw std::runtime_error("unexpected Summary field");
        expect_wire_type(summary_field, 2);
        event.values.push_back(decode_summary_value(summary_field.bytes));
      }
    } else {
      throw std::runtime_error("unexpected Event field " + std::to_string(field.number));
    }
  }
  return event;
}

std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

// ---- Tests -----------------------------------------------------------------------------------

TEST(TensorBoard, Crc32cMeetsItsStandardCheckValue) {
  std::printf("  crc32c(\"123456789\") = 0x%08X (expected 0xE3069283), crc32c(\"\") = 0x%08X\n",
              crc32c("123456789"), crc32c(""));
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(TensorBoard, FileIsNamedSoTensorBoardFindsIt) {
  ScratchFolder folder("name");
  const fs::path dir = folder.path / "runs" / "first";  // made by the writer, parents too
  TensorBoardWriter writer(dir.string());
  const fs::path file(writer.path());
  const std::string name = file.filename().string();
  std::printf("  %s\n", writer.path().c_str());
  EXPECT_EQ(file.parent_path(), dir);
  EXPECT_TRUE(fs::is_regular_file(file));
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_NE(name.find("." + std::to_string(::getpid()) + ".baton"), std::string::npos) << name;
}

TEST(TensorBoard, RecordsParseBackWithTheirChecksumsAndFields) {
  ScratchFolder folder("records");
  struct Point {
    std::string tag;
    int64_t step;
    double value;
    double wall_time;
  };
  const std::vector<Point> points = {
      {"loss", 0, 2.302585, 1700000000.25},     {"accuracy", 0, 0.125, 1700000000.25},
      {"loss", 1, 1.5, 1700000001.5},           {"accuracy", 1, 0.5, 1700000001.5},
      {"learning_rate", 300, -3.5, 1700000002}, {"loss", int64_t(1) << 40, 1e-7, 1700000003.75},
  };
  std::string path;
  {
    TensorBoardWriter writer(folder.path.string());
    for (const Point& point : points) writer.scalar(point.tag, point.step, point.value, point.wall_time);
    writer.flush();
    path = writer.path();
  }

  const std::vector<std::string> records = read_records(path);
  ASSERT_EQ(records.size(), points.size() + 1);
  const DecodedEvent first = decode_event(records[0]);
  std::printf("  event 0: wall_time %.3f file_version \"%s\"\n", first.wall_time, first.file_version.c_str());
  EXPECT_EQ(first.file_version, "brain.Event:2");
  EXPECT_GT(first.wall_time, 1.6e9);
  EXPECT_TRUE(first.values.empty());
  for (size_t i = 0; i < points.size(); ++i) {
    const DecodedEvent event = decode_event(records[i + 1]);
    ASSERT_EQ(event.values.size(), 1u);
    const ScalarValue& value = event.values[0];
    std::printf("  event %zu: wall_time %.3f step %lld tag \"%s\" value %g (wrote %g)\n", i + 1, event.wall_time,
                static_cast<long long>(event.step), value.tag.c_str(), value.simple_value, points[i].value);
    EXPECT_EQ(event.wall_time, points[i].wall_time);
    EXPECT_EQ(event.step, points[i].step);
    EXPECT_EQ(value.tag, points[i].tag);
    EXPECT_EQ(value.simple_value, float(points[i].value));
    EXPECT_TRUE(event.file_version.empty());
  }
}

TEST(TensorBoard, FolderThroughARegularFileIsOneSentence) {
  ScratchFolder folder("not_a_folder");
  const fs::path file = folder.path / "plain_file";
  std::ofstream(file) << "not a folder";
  const std::string dir = (file / "run").string();
  const std::string message = error_message([&] { TensorBoardWriter writer(dir); });
  std::printf("  %s\n", message.c_str());
  EXPECT_EQ(message.rfind("could not create the TensorBoard folder '" + dir + "': ", 0), 0u) << message;
  EXPECT_NE(message.find("; choose another --tensorboard"), std::string::npos) << message;
}

// Lowers this process's file-size limit (RLIMIT_FSIZE) so writes past `bytes` fail with EFBIG, as
// a full disk fails them with ENOSPC; SIGXFSZ is ignored meanwhile so it does not end the test.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_limit_);
    saved_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_limit_;
    lowered.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_limit_);
    signal(SIGXFSZ, saved_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_limit_{};
  void (*saved_handler_)(int) = SIG_DFL;
};

TEST(TensorBoard, WriteThatFailsIsOneSentence) {
  ScratchFolder folder("full");
  TensorBoardWriter writer(folder.path.string());
  const auto written = rlim_t(fs::file_size(writer.path()));
  std::string message;
  {
    FileSizeLimit limit(written + 16);
    message = error_message([&] {
      writer.scalar("loss", 1, 0.5, 1700000000);
      writer.flush();
    });
  }
  std::printf("  %s\n", message.c_str());
  EXPECT_EQ(message, "could not write the TensorBoard events file '" + writer.path() + "': " +
                         std::strerror(EFBIG) + "; free some space or choose another --tensorboard");
}

}  // namespace
}  // namespace baton
