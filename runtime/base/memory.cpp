// Implementation of usable_memory_bytes: sysconf for the machine, cgroup v2 then v1 for the limit.
#include "runtime/base/memory.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace baton {

int64_t usable_memory_bytes() {
  static const int64_t bytes = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
    int64_t memory = pages > 0 && page_size > 0 ? int64_t{pages} * page_size : 0;
    // cgroup v2 (the process's own group, e.g. a Slurm job's or a container's), then v1.
    std::vector<std::string> limits = {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    std::ifstream groups("/proc/self/cgroup");
    for (std::string line; std::getline(groups, line);)
      if (line.rfind("0::", 0) == 0) limits.insert(limits.begin(), "/sys/fs/cgroup" + line.substr(3) + "/memory.max");
    for (const std::string& path : limits) {
      std::ifstream in(path);
      std::string text;
      if (!(in >> text) || text == "max") continue;
      errno = 0;
      const long long limit = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == 0 && limit > 0 && (memory == 0 || limit < memory)) memory = limit;
    }
    return memory;
  }();
  return bytes;
}

}  // namespace baton
