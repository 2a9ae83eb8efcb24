// device:: for builds without CUDA: every call that needs a device fails with one sentence, and
// the local-rank rule (plain C++) is shared with the CUDA build.
#include "runtime/base/device_memory.hpp"

#include <cstdlib>

#include "baton/config.hpp"
#include "runtime/base/error.hpp"

namespace baton::device {

int default_device(int device_count) {
  for (const char* variable : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
    const char* value = std::getenv(variable);
    if (value && *value && device_count > 0) return std::atoi(value) % device_count;
  }
  return 0;
}

#if !BATON_WITH_CUDA
namespace {
[[noreturn]] void no_cuda() {
  BATON_FAIL("this baton was built without CUDA (BATON_WITH_CUDA=OFF), so it cannot use a GPU; rebuild with "
             "-DBATON_WITH_CUDA=ON or use --backend cpu");
}
}  // namespace

void use_device(int) { no_cuda(); }
std::shared_ptr<float> allocate_floats(size_t) { no_cuda(); }
void upload(const float*, float*, size_t) { no_cuda(); }
void download(const float*, float*, size_t) { no_cuda(); }
void upload_bytes(const void*, void*, size_t) { no_cuda(); }
void copy(const float*, float*, size_t) { no_cuda(); }
void fill(float*, size_t, float) { no_cuda(); }
void synchronize() {}
void* stream() { no_cuda(); }
#endif

}  // namespace baton::device
