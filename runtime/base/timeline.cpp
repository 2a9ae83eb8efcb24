// Implementation of the Chrome-trace writer (Trace Event Format, complete "X" events).
#include "runtime/base/timeline.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "runtime/base/error.hpp"

namespace baton {

void Timeline::add(int rank, const std::string& name, const std::string& category, double start_us, double end_us) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back({rank, name, category, start_us, end_us});
}

void Timeline::name_row(int rank, const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  rows_.emplace_back(rank, name);
}

std::string Timeline::serialize() const {
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json rows = nlohmann::json::array(), events = nlohmann::json::array();
  for (const auto& [rank, name] : rows_) rows.push_back({rank, name});
  for (const Event& e : events_) events.push_back({e.rank, e.name, e.category, e.start_us, e.end_us});
  return nlohmann::json{{"rows", rows}, {"events", events}}.dump();
}

void Timeline::merge(const std::string& serialized) {
  nlohmann::json data = nlohmann::json::parse(serialized);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& row : data.at("rows")) rows_.emplace_back(row[0].get<int>(), row[1].get<std::string>());
  for (const auto& e : data.at("events"))
    events_.push_back({e[0].get<int>(), e[1].get<std::string>(), e[2].get<std::string>(), e[3].get<double>(),
                       e[4].get<double>()});
}

void Timeline::write(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json events = nlohmann::json::array();
  for (const auto& [rank, name] : rows_)
    events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", rank}, {"args", {{"name", name}}}});
  for (const Event& e : events_) {
    events.push_back({{"ph", "X"}, {"name", e.name}, {"cat", e.category}, {"pid", e.rank}, {"tid", 0},
                      {"ts", e.start_us}, {"dur", e.end_us - e.start_us}});
  }
  std::ofstream out(path);
  BATON_CHECK(out.is_open(), "cannot write the timeline '" << path << "'; check that its folder exists and is writable");
  out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() << "\n";
  out.flush();
  BATON_CHECK(out.good(), "could not write the timeline '" << path << "': " << std::strerror(errno)
                                                           << "; free some space or choose another --timeline");
}

}  // namespace baton
