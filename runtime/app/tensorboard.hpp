// TensorBoard event files: scalars written as Event protobufs in TFRecord framing, so that
// `tensorboard --logdir DIR` plots a run. The few protobuf fields needed are encoded by hand.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>

namespace baton {

// CRC-32C (Castagnoli), the checksum TFRecord framing stores (masked) after each length and record.
uint32_t crc32c(std::string_view bytes);

class TensorBoardWriter {
 public:
  // Creates `dir` if needed and, in it, events.out.tfevents.<unix seconds>.<hostname>.<pid>.baton
  // holding its first event (the file version); throws baton::Error when either cannot be made.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();  // flushes; a failure there is reported on stderr, never thrown
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One point of the curve `tag`; wall_time is in seconds since the Unix epoch.
  void scalar(const std::string& tag, int64_t step, double value, double wall_time);
  // A SessionLog START at `step`: TensorBoard drops the points of earlier files from that step on, so
  // a run resumed from a checkpoint does not show the stopped run's later points twice.
  void restart(int64_t step, double wall_time);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  void check_written();

  std::string path_;
  std::ofstream out_;
};

}  // namespace baton
