// Readers for the IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary formats, the synthetic data set and
// per-channel statistics. Files are streamed through zlib, which also reads plain files; every header,
// size and label is checked before it is trusted, and what a header announces is checked against the
// file and the memory limit before anything is allocated, so a small file cannot claim much memory.
#include "runtime/data/dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include "runtime/base/error.hpp"
#include "runtime/base/memory.hpp"
#include "runtime/base/rng.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;
constexpr uint32_t kIdxMaxSide = 1u << 15;
constexpr int kDigitClasses = 10;  // MNIST, Fashion-MNIST and CIFAR-10 all have ten
constexpr int64_t kCifarPixels = 3 * 32 * 32;
constexpr int64_t kCifarRecord = 1 + kCifarPixels;
constexpr double kConstantChannel = 1e-6;  // a smaller standard deviation is rounding noise

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

uint32_t big_endian32(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

// Human-readable size for messages: "268435712 bytes (256 MiB)".
std::string describe_bytes(int64_t bytes) {
  static const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  std::string text = std::to_string(bytes) + " bytes";
  if (bytes < 1024) return text;
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  char shown[32];
  std::snprintf(shown, sizeof shown, value < 10 ? "%.1f" : "%.0f", value);
  return text + " (" + shown + " " + units[unit] + ")";
}

std::string describe_limit(int64_t max_bytes) {
  return "the " + describe_bytes(max_bytes) + " limit on the data's memory";
}

constexpr const char* kRaiseLimit = "raise --max-memory if this machine has that memory";

// a * b, or -1 when it overflows int64 (every caller multiplies sizes, which are not negative).
int64_t checked_product(int64_t a, int64_t b) {
  int64_t product = 0;
  return __builtin_mul_overflow(a, b, &product) ? -1 : product;
}

int64_t checked_sum(int64_t a, int64_t b) {
  int64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? -1 : sum;
}

// Deflate never compresses better than 1032:1 (a 258-byte match in 2 bits), so a gzip file of n bytes
// decompresses to at most 1032 n bytes (its headers and trailers only make the bound looser).
constexpr int64_t kDeflateMaxRatio = 1032;
int64_t most_decompressed(int64_t compressed) {
  int64_t bound = checked_product(compressed, kDeflateMaxRatio);
  return bound < 0 ? std::numeric_limits<int64_t>::max() : bound;
}

std::string file_type_name(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// A data file opened for reading, gzipped or plain (zlib reads both). It is opened without blocking
// and checked to be a regular file first, so a FIFO or a device given as a data file is an error, not
// a hang, and a directory is named as one.
class DataFile {
 public:
  DataFile(std::string path, const char* kind) : path_(std::move(path)) {
    int fd = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      struct stat link {};
      BATON_CHECK(!(error == ENOENT && ::lstat(path_.c_str(), &link) == 0 && S_ISLNK(link.st_mode)),
                  "'" << path_ << "' is a symbolic link to a file that does not exist; check the link or the path");
      BATON_CHECK(error != ENOENT, "'" << path_ << "' does not exist; check the path");
      BATON_FAIL("could not open '" << path_ << "' (" << std::strerror(error) << "); check its permissions");
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      const int error = errno;
      const bool stat_failed = info.st_mode == 0;
      ::close(fd);
      BATON_CHECK(!stat_failed, "could not read '" << path_ << "' (" << std::strerror(error) << ")");
      BATON_CHECK(!S_ISDIR(info.st_mode), "'" << path_ << "' is a directory, not " << kind
                                              << "; pass the file itself (or its folder as --data-dir)");
      BATON_FAIL("'" << path_ << "' is " << file_type_name(info.st_mode) << ", not a regular file; pass " << kind
                     << " stored as a regular file");
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    file_bytes_ = static_cast<int64_t>(info.st_size);
    file_ = gzdopen(fd, "rb");
    if (file_ == nullptr) {
      ::close(fd);
      BATON_FAIL("could not open '" << path_ << "' through zlib (out of memory?)");
    }
    gzbuffer(file_, 1u << 18);
    gzipped_ = gzdirect(file_) == 0;
  }
  ~DataFile() {
    if (file_ != nullptr) gzclose(file_);
  }
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;

  const std::string& path() const { return path_; }
  bool gzipped() const { return gzipped_; }
  int64_t file_bytes() const { return file_bytes_; }
  int64_t consumed() const { return consumed_; }  // decompressed bytes read so far
  // The most decompressed bytes the file can hold: its size if plain, else deflate's bound.
  int64_t most_bytes() const { return gzipped_ ? most_decompressed(file_bytes_) : file_bytes_; }

  // Reads up to `size` bytes; fewer only at the end of the data. A zlib error is thrown, naming the file.
  size_t read(uint8_t* out, size_t size) {
    size_t done = 0;
    while (done < size) {
      const unsigned want = static_cast<unsigned>(std::min<size_t>(size - done, size_t{1} << 30));
      const int got = gzread(file_, out + done, want);
      if (got > 0) done += static_cast<size_t>(got);
      if (got < static_cast<int>(want)) {
        int status = Z_OK;
        const char* reason = gzerror(file_, &status);
        BATON_CHECK(status == Z_OK, "'" << path_ << "' could not be decompressed (zlib: " << reason
                                        << "); the download may be corrupt, fetch it again");
        break;
      }
    }
    consumed_ += static_cast<int64_t>(done);
    return done;
  }

  // True when no byte follows what has been read (reads one byte ahead).
  bool at_end() {
    uint8_t extra = 0;
    return read(&extra, 1) == 0;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
  bool gzipped_ = false;
  int64_t file_bytes_ = 0;
  int64_t consumed_ = 0;
};

// value / 255 for every byte value, exactly as a division gives it.
const std::array<float, 256>& unit_scale_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> values{};
    for (int i = 0; i < 256; ++i) values[i] = static_cast<float>(i) / 255.0f;
    return values;
  }();
  return table;
}

void append_unit_pixels(const uint8_t* pixels, int64_t count, std::vector<float>& out) {
  const auto& table = unit_scale_table();
  size_t start = out.size();
  out.resize(start + static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out[start + i] = table[pixels[i]];
}

std::string joined_names() {
  std::string text;
  for (const std::string& name : dataset_names()) text += (text.empty() ? "" : ", ") + name;
  return text;
}

std::string data_dir_hint(const std::string& name) {
  if (name == "fashion-mnist")
    return "pass --data-dir with the folder holding the Fashion-MNIST IDX files (Debian: apt-get install "
           "dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)";
  if (name == "mnist")
    return "pass --data-dir with the folder holding the MNIST IDX files (train-images-idx3-ubyte and the three "
           "others, gzipped or not)";
  return "pass --data-dir with the folder holding the CIFAR-10 binary version (data_batch_1.bin ... "
         "data_batch_5.bin and test_batch.bin, from cifar-10-binary.tar.gz)";
}

// An IDX file whose header has been read and checked, before any of its data is: the sizes it
// announces, the data bytes that follow the header, and the memory its values take once read.
struct IdxFile {
  std::unique_ptr<DataFile> file;
  std::vector<uint32_t> sizes{};
  int64_t header_bytes = 0;
  int64_t payload = 0;      // data bytes the header announces (one per pixel or label)
  std::string announced{};  // "3 images of 4x5", "3 labels"
};

// Opens an IDX file and reads its header: magic number, then `rank` big-endian sizes.
IdxFile open_idx(const std::string& path, uint32_t magic, const char* kind, int rank) {
  IdxFile idx{std::make_unique<DataFile>(path, kind)};
  DataFile& file = *idx.file;
  idx.header_bytes = 4 + 4 * rank;
  std::array<uint8_t, 16> header{};
  size_t got = file.read(header.data(), 4);
  BATON_CHECK(got == 4, "'" << path << "' is truncated: it ends after " << got
                            << " bytes, before the IDX magic number; download it again");
  uint32_t found = big_endian32(header.data());
  BATON_CHECK(found == magic, "'" << path << "' is not " << kind << " (magic " << hex32(found) << " instead of "
                                  << hex32(magic) << "); the download may be corrupt");
  got += file.read(header.data() + 4, static_cast<size_t>(idx.header_bytes - 4));
  BATON_CHECK(static_cast<int64_t>(got) == idx.header_bytes,
              "'" << path << "' is truncated: it ends after " << got << " bytes, inside its " << idx.header_bytes
                  << "-byte IDX header; download it again");
  for (int i = 0; i < rank; ++i) idx.sizes.push_back(big_endian32(header.data() + 4 + 4 * i));
  return idx;
}

// The header's announced data against the file: a plain file must hold exactly that many bytes, and
// a gzipped one must be large enough to decompress to them; checked before anything is allocated.
void check_announced_fits(const IdxFile& idx) {
  const DataFile& file = *idx.file;
  const int64_t needed = idx.header_bytes + idx.payload;
  const std::string& path = file.path();
  if (!file.gzipped()) {
    BATON_CHECK(file.file_bytes() >= needed, "'" << path << "' is truncated: its header announces " << idx.announced
                                                 << " (" << needed << " bytes) but the file ends after "
                                                 << file.file_bytes() << " bytes; download it again");
    BATON_CHECK(file.file_bytes() == needed,
                "'" << path << "' is longer than its header announces: " << idx.announced << " (" << needed
                    << " bytes) but the file holds " << file.file_bytes()
                    << " bytes; the file is corrupt or not an IDX file");
  } else {
    BATON_CHECK(file.most_bytes() >= needed,
                "'" << path << "' is truncated: its header announces " << idx.announced << " (" << needed
                    << " bytes) but a gzip file of " << file.file_bytes() << " bytes decompresses to at most "
                    << file.most_bytes() << " bytes; download it again");
  }
}

IdxFile open_idx_images(const std::string& path) {
  IdxFile idx = open_idx(path, kIdxImagesMagic, "an IDX image file", 3);
  const uint32_t count = idx.sizes[0], rows = idx.sizes[1], cols = idx.sizes[2];
  BATON_CHECK(rows >= 1 && cols >= 1 && rows <= kIdxMaxSide && cols <= kIdxMaxSide,
              "'" << path << "' announces images of " << rows << "x" << cols
                  << ", which is not a usable image size; the file is corrupt");
  BATON_CHECK(count >= 1, "'" << path << "' announces 0 images; a data set needs at least one, so the file is "
                                     "empty or corrupt");
  idx.announced = std::to_string(count) + " images of " + std::to_string(rows) + "x" + std::to_string(cols);
  idx.payload = checked_product(checked_product(int64_t{count}, int64_t{rows}), int64_t{cols});  // < 2^62
  BATON_CHECK(data_bytes(count, int64_t{rows} * cols) >= 0,
              "'" << path << "' announces " << idx.announced
                  << ", whose size as floats overflows 64 bits; the file is corrupt");
  check_announced_fits(idx);
  return idx;
}

IdxFile open_idx_labels(const std::string& path) {
  IdxFile idx = open_idx(path, kIdxLabelsMagic, "an IDX label file", 1);
  BATON_CHECK(idx.sizes[0] >= 1, "'" << path << "' announces 0 labels; a data set needs at least one, so the "
                                            "file is empty or corrupt");
  idx.payload = idx.sizes[0];
  idx.announced = std::to_string(idx.sizes[0]) + " labels";
  check_announced_fits(idx);
  return idx;
}

// Reads the data the header announced, in chunks, handing each to `consume(bytes, offset, size)`:
// a file that ends early or holds more than announced is refused, naming it.
template <class Consume>
void read_announced(IdxFile& idx, Consume&& consume) {
  DataFile& file = *idx.file;
  const int64_t needed = idx.header_bytes + idx.payload;
  std::vector<uint8_t> chunk(static_cast<size_t>(std::min<int64_t>(idx.payload, int64_t{1} << 20)));
  for (int64_t offset = 0; offset < idx.payload;) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(idx.payload - offset, static_cast<int64_t>(chunk.size())));
    const size_t got = file.read(chunk.data(), want);
    consume(chunk.data(), offset, static_cast<int64_t>(got));
    offset += static_cast<int64_t>(got);
    BATON_CHECK(got == want, "'" << file.path() << "' is truncated: its header announces " << idx.announced << " ("
                                 << needed << " bytes) but the file ends after " << file.consumed()
                                 << " bytes; download it again");
  }
  BATON_CHECK(file.at_end(), "'" << file.path() << "' is longer than its header announces: " << idx.announced
                                 << " (" << needed
                                 << " bytes) but more bytes follow; the file is corrupt or not an IDX file");
}

void read_idx_images(IdxFile& idx, Dataset& out) {
  out.image_dims = {1, int64_t{idx.sizes[1]}, int64_t{idx.sizes[2]}};
  out.images.resize(static_cast<size_t>(idx.payload));
  const auto& table = unit_scale_table();
  float* images = out.images.data();
  read_announced(idx, [&](const uint8_t* bytes, int64_t offset, int64_t size) {
    for (int64_t i = 0; i < size; ++i) images[offset + i] = table[bytes[i]];
  });
}

void read_idx_labels(IdxFile& idx, Dataset& out) {
  out.labels.resize(static_cast<size_t>(idx.payload));
  const std::string& path = idx.file->path();
  read_announced(idx, [&](const uint8_t* bytes, int64_t offset, int64_t size) {
    for (int64_t i = 0; i < size; ++i) {
      BATON_CHECK(bytes[i] < kDigitClasses, "'" << path << "' has label " << int{bytes[i]} << " at index "
                                                << offset + i << ", outside 0.." << kDigitClasses - 1
                                                << "; the file is corrupt or not an MNIST-style label file");
      out.labels[static_cast<size_t>(offset + i)] = bytes[i];
    }
  });
}

// An image file and its label file, both headers checked and matching, nothing read yet.
struct IdxPair {
  std::string name;
  IdxFile images;
  IdxFile labels;
  int64_t count() const { return images.sizes[0]; }
  int64_t image_elements() const { return int64_t{images.sizes[1]} * images.sizes[2]; }
  int64_t memory() const { return data_bytes(count(), image_elements()); }  // >= 0: checked on opening
};

IdxPair open_idx_pair(const std::string& images_path, const std::string& labels_path, const std::string& name) {
  IdxPair pair{name, open_idx_images(images_path), open_idx_labels(labels_path)};
  BATON_CHECK(pair.labels.sizes[0] == pair.images.sizes[0],
              "'" << labels_path << "' announces " << pair.labels.sizes[0] << " labels but '" << images_path
                  << "' announces " << pair.images.sizes[0] << " images; the two files do not belong together");
  return pair;
}

Dataset read_idx_pair(IdxPair& pair) {
  Dataset out;
  out.name = pair.name;
  out.classes = kDigitClasses;
  read_idx_images(pair.images, out);
  read_idx_labels(pair.labels, out);
  return out;
}

// Refuses `bytes` of data over max_bytes (0: no limit); `what` says what announced them.
void check_data_memory(int64_t bytes, int64_t max_bytes, const std::string& what) {
  BATON_CHECK(bytes >= 0, what << ", more bytes than 64 bits can count; the file or the sizes are corrupt");
  BATON_CHECK(max_bytes <= 0 || bytes <= max_bytes,
              what << " (" << describe_bytes(bytes) << " as float images and labels), over "
                   << describe_limit(max_bytes) << "; " << kRaiseLimit << ", or check the data");
}

void check_pair_memory(const IdxPair& pair, int64_t max_bytes) {
  check_data_memory(pair.memory(), max_bytes, "'" + pair.images.file->path() + "' announces " + pair.images.announced);
}

// CIFAR-10 batch files opened and, when plain, checked by size; nothing read yet.
struct CifarFiles {
  std::string name;
  std::vector<std::unique_ptr<DataFile>> files{};
  int64_t plain_records = 0;  // in the plain files, known from their sizes

  int64_t plain_memory() const { return data_bytes(plain_records, kCifarPixels); }
};

std::string cifar_size_error(const std::string& path, int64_t size) {
  std::ostringstream message;
  message << "'" << path << "' holds " << size << " bytes, which is not a positive multiple of the " << kCifarRecord
          << "-byte CIFAR-10 record (1 label byte + 3x32x32 pixels); the file is truncated or not the CIFAR-10 "
          << "binary version";
  return message.str();
}

CifarFiles open_cifar(const std::vector<std::string>& paths, const std::string& name) {
  BATON_CHECK(!paths.empty(), "no CIFAR-10 batch files were given for '" << name << "'; " << data_dir_hint("cifar10"));
  CifarFiles set{name};
  for (const std::string& path : paths) {
    set.files.push_back(std::make_unique<DataFile>(path, "a CIFAR-10 batch file"));
    const DataFile& file = *set.files.back();
    if (file.gzipped()) continue;
    BATON_CHECK(file.file_bytes() > 0 && file.file_bytes() % kCifarRecord == 0, cifar_size_error(path, file.file_bytes()));
    set.plain_records += file.file_bytes() / kCifarRecord;
  }
  return set;
}

void check_cifar_memory(const CifarFiles& set, int64_t max_bytes) {
  const std::string what = set.files.size() == 1 ? "'" + set.files[0]->path() + "' holds"
                                                 : "the CIFAR-10 files of '" + set.name + "' hold";
  check_data_memory(set.plain_memory(), max_bytes, what + " " + std::to_string(set.plain_records) + " records");
}

// Reads every file record by record; gzipped files are refused as soon as they decompress to more
// than max_bytes (0: no limit) allows. Memory grows at most to that bound.
Dataset read_cifar(CifarFiles& set, int64_t max_bytes) {
  Dataset out;
  out.name = set.name;
  out.image_dims = {3, 32, 32};
  out.classes = kDigitClasses;
  const int64_t record_memory = data_bytes(1, kCifarPixels);
  const int64_t max_records = max_bytes > 0 ? max_bytes / record_memory : std::numeric_limits<int64_t>::max();
  constexpr int64_t kChunkRecords = 256;
  std::vector<uint8_t> chunk(static_cast<size_t>(kChunkRecords * kCifarRecord));
  for (const std::unique_ptr<DataFile>& file : set.files) {
    const int64_t expected = file->gzipped() ? -1 : file->file_bytes() / kCifarRecord;
    int64_t records = 0;
    size_t got = 0;
    do {
      got = file->read(chunk.data(), chunk.size());
      const int64_t whole = static_cast<int64_t>(got) / kCifarRecord;
      BATON_CHECK(got % kCifarRecord == 0, cifar_size_error(file->path(), file->consumed()));
      const int64_t total = out.size() + whole;
      BATON_CHECK(total <= max_records,
                  "'" << file->path() << "' holds at least " << records + whole << " records, so the CIFAR-10 data of '"
                      << set.name << "' grows to " << describe_bytes(data_bytes(total, kCifarPixels))
                      << " as float images and labels, over " << describe_limit(max_bytes) << "; " << kRaiseLimit
                      << ", or check the data");
      if (static_cast<int64_t>(out.labels.capacity()) < total) {
        // A plain file: exactly its records; a gzipped one: twice as many, at most up to the limit.
        const int64_t capacity =
            expected >= 0 ? out.size() - records + expected
                          : std::min(std::max<int64_t>(total, 2 * static_cast<int64_t>(out.labels.capacity())), max_records);
        out.labels.reserve(static_cast<size_t>(capacity));
        out.images.reserve(static_cast<size_t>(capacity * kCifarPixels));
      }
      for (int64_t r = 0; r < whole; ++r, ++records) {
        const uint8_t* at = chunk.data() + r * kCifarRecord;
        BATON_CHECK(at[0] < kDigitClasses, "'" << file->path() << "' has label " << int{at[0]} << " in record "
                                               << records << ", outside 0.." << kDigitClasses - 1
                                               << "; the file is corrupt or not the CIFAR-10 binary version");
        out.labels.push_back(at[0]);
        append_unit_pixels(at + 1, kCifarPixels, out.images);
      }
    } while (got == chunk.size());
    BATON_CHECK(records > 0, cifar_size_error(file->path(), 0));
    BATON_CHECK(expected < 0 || records == expected,
                "'" << file->path() << "' changed while it was read (" << records << " records instead of " << expected
                    << "); read it when nothing writes it");
  }
  return out;
}

void check_data_dir(const DataOptions& options) {
  BATON_CHECK(!options.dir.empty(), "no data directory given for '" << options.name << "'; "
                                                                    << data_dir_hint(options.name));
  std::error_code ignored;
  const fs::file_status status = fs::status(options.dir, ignored);
  BATON_CHECK(fs::exists(status), "data directory '" << options.dir << "' does not exist; " << data_dir_hint(options.name));
  BATON_CHECK(fs::is_directory(status), "data directory '" << options.dir << "' is not a directory; "
                                                           << data_dir_hint(options.name));
}

// dir/base, or dir/base.gz when only the gzipped one is there. Whatever the path is (a directory, a
// FIFO), the reader names it; only a path that is not there at all is looked for gzipped.
std::string find_data_file(const DataOptions& options, const std::string& base) {
  std::string plain = (fs::path(options.dir) / base).string();
  std::string gzipped = plain + ".gz";
  std::error_code ignored;
  if (fs::exists(fs::symlink_status(plain, ignored))) return plain;
  if (fs::exists(fs::symlink_status(gzipped, ignored))) return gzipped;
  BATON_FAIL("neither '" << plain << "' nor '" << gzipped << "' exists; " << data_dir_hint(options.name));
}

void check_same_image_dims(const DataSplit& split) {
  BATON_CHECK(split.train.image_dims == split.test.image_dims,
              "test images of '" << split.test.name << "' are " << to_string(split.test.image_dims)
                                 << " but training images are " << to_string(split.train.image_dims)
                                 << "; the data directory mixes two data sets");
}

// All four headers are read and checked, and the sizes they announce against options.max_bytes,
// before any image is.
DataSplit load_idx_data(const DataOptions& options) {
  check_data_dir(options);
  auto open_part = [&](const std::string& prefix, const std::string& part) {
    return open_idx_pair(find_data_file(options, prefix + "-images-idx3-ubyte"),
                         find_data_file(options, prefix + "-labels-idx1-ubyte"), options.name + "/" + part);
  };
  IdxPair train = open_part("train", "train");
  IdxPair test = open_part("t10k", "test");
  check_pair_memory(train, options.max_bytes);
  check_pair_memory(test, options.max_bytes);
  check_data_memory(checked_sum(train.memory(), test.memory()), options.max_bytes,
                    "'" + train.images.file->path() + "' and '" + test.images.file->path() + "' announce " +
                        train.images.announced + " and " + test.images.announced);
  DataSplit split{read_idx_pair(train), read_idx_pair(test)};
  check_same_image_dims(split);
  return split;
}

// The plain files are checked by their sizes against options.max_bytes before any is read; gzipped
// ones as they decompress, within what the others leave.
DataSplit load_cifar10_data(const DataOptions& options) {
  check_data_dir(options);
  std::vector<std::string> train_paths;
  for (int i = 1; i <= 5; ++i) train_paths.push_back(find_data_file(options, "data_batch_" + std::to_string(i) + ".bin"));
  CifarFiles train = open_cifar(train_paths, options.name + "/train");
  CifarFiles test = open_cifar({find_data_file(options, "test_batch.bin")}, options.name + "/test");
  const int64_t limit = options.max_bytes;
  check_data_memory(checked_sum(train.plain_memory(), test.plain_memory()), limit,
                    "the CIFAR-10 files in '" + options.dir + "' hold " +
                        std::to_string(train.plain_records + test.plain_records) + " records");
  DataSplit split;
  // A limit used up is 1 byte, not 0 (no limit).
  split.train = read_cifar(train, limit > 0 ? std::max<int64_t>(limit - test.plain_memory(), 1) : 0);
  split.test = read_cifar(test, limit > 0 ? std::max<int64_t>(limit - data_bytes(split.train.size(), kCifarPixels), 1) : 0);
  return split;
}

struct SyntheticSizes {
  int64_t image_elements = 0;
  int64_t bytes = 0;  // images, labels and the class prototypes
};

// The products of a synthetic set's sizes, each refused by name when it overflows; `names` says
// which options gave the sizes.
SyntheticSizes synthetic_sizes(const Dims& image_dims, int classes, int64_t count, int64_t first_sample,
                               const std::string& what, const std::string& fix) {
  bool dims_ok = image_dims.size() == 3;
  for (int64_t size : image_dims) dims_ok = dims_ok && size >= 1;
  BATON_CHECK(dims_ok, "synthetic images need three sizes {C,H,W}, each at least 1 (got " << to_string(image_dims)
                                                                                          << "); pass e.g. 3x32x32");
  BATON_CHECK(classes >= 2, "synthetic data needs at least 2 classes (got " << classes << "); pass a larger number");
  BATON_CHECK(count >= 0 && first_sample >= 0, "synthetic sample range " << first_sample << " + " << count
                                                                         << " is negative; pass sizes of 0 or more");
  BATON_CHECK(checked_sum(first_sample, count) >= 0, "synthetic sample range " << first_sample << " + " << count
                                                                               << " overflows 64 bits; " << fix);
  SyntheticSizes sizes;
  sizes.image_elements = checked_product(checked_product(image_dims[0], image_dims[1]), image_dims[2]);
  BATON_CHECK(sizes.image_elements >= 0 && sizes.image_elements <= std::numeric_limits<int64_t>::max() / 4,
              "synthetic images of " << to_string(image_dims) << " have more values than 64 bits can count; " << fix);
  const int64_t prototypes = checked_product(checked_product(classes, sizes.image_elements), int64_t{sizeof(float)});
  sizes.bytes = checked_sum(data_bytes(count, sizes.image_elements), prototypes);
  BATON_CHECK(data_bytes(count, sizes.image_elements) >= 0 && prototypes >= 0 && sizes.bytes >= 0,
              what << " of " << count << " images of " << to_string(image_dims) << " and " << classes
                   << " classes needs more bytes than 64 bits can count; " << fix);
  return sizes;
}

void check_synthetic_memory(const SyntheticSizes& sizes, int64_t max_bytes, const std::string& what,
                            const std::string& fix) {
  BATON_CHECK(max_bytes <= 0 || sizes.bytes <= max_bytes,
              what << " needs " << describe_bytes(sizes.bytes) << " as float images, labels and class prototypes, over "
                   << describe_limit(max_bytes) << "; " << fix << ", or " << kRaiseLimit);
}

DataSplit load_synthetic_data(const DataOptions& options) {
  BATON_CHECK(options.synthetic_train >= 1 && options.synthetic_test >= 0,
              "synthetic data needs at least 1 training sample and 0 or more test samples (got "
                  << options.synthetic_train << " and " << options.synthetic_test << "); pass positive sizes");
  const std::string fix = "pass a smaller --input-shape, --train-size, --test-size or --classes";
  const int64_t total = checked_sum(options.synthetic_train, options.synthetic_test);
  BATON_CHECK(total >= 0, "--train-size " << options.synthetic_train << " + --test-size " << options.synthetic_test
                                          << " overflows 64 bits; " << fix);
  const std::string what = "synthetic data (--train-size " + std::to_string(options.synthetic_train) +
                           " + --test-size " + std::to_string(options.synthetic_test) + " images of --input-shape " +
                           to_string(options.synthetic_dims) + ", --classes " +
                           std::to_string(options.synthetic_classes) + ")";
  SyntheticSizes sizes = synthetic_sizes(options.synthetic_dims, options.synthetic_classes, total, 0, "synthetic data", fix);
  check_synthetic_memory(sizes, options.max_bytes, what, fix);
  return {make_synthetic(options.synthetic_dims, options.synthetic_classes, options.synthetic_train, options.seed,
                         "synthetic/train", 0, 0),
          make_synthetic(options.synthetic_dims, options.synthetic_classes, options.synthetic_test, options.seed,
                         "synthetic/test", options.synthetic_train, 0)};
}

}  // namespace

int64_t data_bytes(int64_t count, int64_t image_elements) {
  if (count < 0 || image_elements < 0) return -1;
  const int64_t values = checked_product(count, image_elements);
  if (values < 0) return -1;
  const int64_t per_value = checked_product(values, int64_t{sizeof(float)});
  const int64_t labels = checked_product(count, int64_t{sizeof(int32_t)});
  if (per_value < 0 || labels < 0) return -1;
  return checked_sum(per_value, labels);
}

int64_t default_max_data_bytes() { return std::max<int64_t>(usable_memory_bytes() / 2, int64_t{1} << 30); }

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"fashion-mnist", "mnist", "cifar10", "synthetic"};
  return names;
}

namespace {

DataSplit load_unpadded(const DataOptions& options) {
  if (options.name == "fashion-mnist" || options.name == "mnist") return load_idx_data(options);
  if (options.name == "cifar10") return load_cifar10_data(options);
  if (options.name == "synthetic") return load_synthetic_data(options);
  BATON_FAIL("unknown dataset '" << options.name << "'; choose one of " << joined_names());
}

Dims padded_dims(const Dims& dims, int pad) { return {dims[0], dims[1] + 2 * pad, dims[2] + 2 * pad}; }

}  // namespace

DataSplit load_data(const DataOptions& options) {
  DataSplit split = load_unpadded(options);
  if (options.pad == 0) return split;
  const Dims dims = padded_dims(split.train.image_dims, options.pad);
  const int64_t bytes = checked_sum(data_bytes(split.train.size(), element_count(dims)),
                                    data_bytes(split.test.size(), element_count(dims)));
  BATON_CHECK(bytes >= 0 && (options.max_bytes <= 0 || bytes <= options.max_bytes),
              "the data padded by --pad " << options.pad << " to " << to_string(dims) << " images needs "
                                          << describe_bytes(bytes) << ", over " << describe_limit(options.max_bytes)
                                          << "; pass a smaller --pad, or " << kRaiseLimit);
  return {pad_images(split.train, options.pad), pad_images(split.test, options.pad)};
}

Dataset pad_images(const Dataset& data, int pad) {
  BATON_CHECK(pad >= 0 && data.image_dims.size() == 3, "images of " << to_string(data.image_dims)
                                                                    << " cannot be padded by " << pad);
  Dataset padded{data.name, padded_dims(data.image_dims, pad), data.classes, {}, data.labels};
  const int64_t channels = data.image_dims[0], h = data.image_dims[1], w = data.image_dims[2];
  const int64_t out_h = padded.image_dims[1], out_w = padded.image_dims[2];
  padded.images.assign(size_t(data.size() * padded.image_elements()), 0.0f);
  for (int64_t plane = 0; plane < data.size() * channels; ++plane)
    for (int64_t y = 0; y < h; ++y) {
      const float* row = data.images.data() + (plane * h + y) * w;
      std::copy_n(row, w, padded.images.data() + (plane * out_h + y + pad) * out_w + pad);
    }
  return padded;
}

Dataset read_idx(const std::string& images_path, const std::string& labels_path, const std::string& name,
                 int64_t max_bytes) {
  IdxPair pair = open_idx_pair(images_path, labels_path, name);
  check_pair_memory(pair, max_bytes);
  return read_idx_pair(pair);
}

Dataset read_cifar10_batches(const std::vector<std::string>& paths, const std::string& name, int64_t max_bytes) {
  CifarFiles set = open_cifar(paths, name);
  check_cifar_memory(set, max_bytes);
  return read_cifar(set, max_bytes);
}

Dataset make_synthetic(const Dims& image_dims, int classes, int64_t count, uint64_t seed, const std::string& name,
                       int64_t first_sample, int64_t max_bytes) {
  const std::string fix = "pass fewer or smaller images or fewer classes";
  const SyntheticSizes sizes = synthetic_sizes(image_dims, classes, count, first_sample, "synthetic data set '" + name + "'", fix);
  check_synthetic_memory(sizes, max_bytes,
                         "synthetic data set '" + name + "' of " + std::to_string(count) + " images of " +
                             to_string(image_dims) + " and " + std::to_string(classes) + " classes",
                         fix);
  Dataset out;
  out.name = name;
  out.image_dims = image_dims;
  out.classes = classes;
  const int64_t elements = sizes.image_elements;
  const uint64_t prototype_key = mix_keys(seed, 1), label_key = mix_keys(seed, 2), noise_key = mix_keys(seed, 3);
  std::vector<float> prototypes(static_cast<size_t>(int64_t{classes} * elements));
  for (int64_t c = 0; c < classes; ++c)
    for (int64_t e = 0; e < elements; ++e) prototypes[c * elements + e] = uniform01(mix_keys(prototype_key, c), e);
  out.labels.resize(count);
  out.images.resize(static_cast<size_t>(count * elements));
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t sample = static_cast<uint64_t>(first_sample + i);
    const int32_t label = static_cast<int32_t>(mix_keys(label_key, sample) % static_cast<uint64_t>(classes));
    const uint64_t sample_noise = mix_keys(noise_key, sample);
    out.labels[i] = label;
    for (int64_t e = 0; e < elements; ++e)
      out.images[i * elements + e] = 0.5f * prototypes[label * elements + e] + 0.5f * uniform01(sample_noise, e);
  }
  return out;
}

Normalization channel_statistics(const Dataset& dataset) {
  BATON_CHECK(dataset.size() > 0, "cannot compute channel statistics of the empty data set '"
                                      << dataset.name << "'; it needs at least one image");
  const int64_t channels = dataset.image_dims.at(0);
  const int64_t plane = dataset.image_elements() / channels;
  std::vector<double> sum(channels, 0.0), sum_squares(channels, 0.0);
  for (int64_t i = 0; i < dataset.size(); ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      const float* values = dataset.images.data() + (i * channels + c) * plane;
      double s = 0.0, s2 = 0.0;
      for (int64_t p = 0; p < plane; ++p) {
        s += values[p];
        s2 += static_cast<double>(values[p]) * values[p];
      }
      sum[c] += s;
      sum_squares[c] += s2;
    }
  }
  Normalization out;
  const double n = static_cast<double>(dataset.size() * plane);
  for (int64_t c = 0; c < channels; ++c) {
    double mean = sum[c] / n;
    double stddev = std::sqrt(std::max(0.0, sum_squares[c] / n - mean * mean));
    out.mean.push_back(static_cast<float>(mean));
    out.stddev.push_back(stddev > kConstantChannel ? static_cast<float>(stddev) : 1.0f);
  }
  return out;
}

}  // namespace baton
