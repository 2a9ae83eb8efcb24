// A Chrome-trace timeline (the JSON Perfetto and chrome://tracing open): one row per rank, one
// box per instruction. The executor records measured times, the simulator predicted ones, in the
// same format so that a measured and a predicted run can be overlaid.
#pragma once

#include <mutex>
#include <string>
#include <vector>

namespace baton {

class Timeline {
 public:
  // A box from start to end (microseconds) on the row of `rank`; category: "compute" (forward and backward passes) or "other".
  void add(int rank, const std::string& name, const std::string& category, double start_us, double end_us);
  void name_row(int rank, const std::string& name);  // e.g. "rank 3: stage 1, replica 1"
  void write(const std::string& path) const;  // throws one sentence when the file cannot be written
  // For gathering ranks' timelines into one: this one's rows and boxes as text, and the reverse.
  std::string serialize() const;
  void merge(const std::string& serialized);

 private:
  struct Event {
    int rank;
    std::string name, category;
    double start_us, end_us;
  };
  mutable std::mutex mutex_;
  std::vector<Event> events_;
  std::vector<std::pair<int, std::string>> rows_;
};

}  // namespace baton
