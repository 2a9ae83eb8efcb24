// Device (CUDA) memory for tensors that live on a GPU: allocation, the copies between host and
// device, fills, and the one stream every kernel and copy of this process runs on. A build
// without CUDA has the same functions; they fail with one sentence saying so.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace baton::device {

// Makes `index` this process's device; fails with one sentence naming why it cannot be used.
void use_device(int index);
// The device a rank takes when none is named: the launcher's local rank (Open MPI's
// OMPI_COMM_WORLD_LOCAL_RANK, Slurm's SLURM_LOCALID, MPICH's MPI_LOCALRANKID) modulo the
// number of devices, else 0.
int default_device(int device_count);

// Zero-filled device floats, freed when the last owner lets go.
std::shared_ptr<float> allocate_floats(size_t count);

// Copies on the process's stream. Those that read into or out of host memory return when the
// host side may be used (they wait for the stream); device-to-device copies and fills do not.
void upload(const float* host, float* device, size_t count);
void download(const float* device, float* host, size_t count);
void upload_bytes(const void* host, void* device, size_t bytes);
void copy(const float* from, float* to, size_t count);
void fill(float* data, size_t count, float value);
void synchronize();

// The process's stream, as a cudaStream_t; kernels and library handles are bound to it.
void* stream();

}  // namespace baton::device
