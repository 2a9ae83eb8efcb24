// How much memory this process may use: the machine's physical memory, or the limit of its cgroup
// (a container, a Slurm job) when that is lower. Limits on data and models are fractions of it.
#pragma once

#include <cstdint>

namespace baton {

int64_t usable_memory_bytes();  // 0 if it cannot be told

}  // namespace baton
