// The GPU's memory for the ops (ops/memory.h): allocations with cudaMalloc, zeroing and copies
// ordered on the backend's stream; copies to the host wait for the stream. Neither allocations
// nor host copies may happen while the stream is recorded into a graph (Ops::record()).
#pragma once

#include <cuda_runtime.h>
#include <unordered_map>

#include "ops/memory.h"

namespace octet::cuda {

class DeviceMemory final : public Memory {
  public:
    explicit DeviceMemory(cudaStream_t stream) : stream_(stream) {}
    bool host_accessible() const override { return false; }
    void* allocate(size_t bytes) override;
    void release(void* p) noexcept override;
    void zero(void* p, size_t bytes) override;
    void copy(void* dst, const void* src, size_t bytes) override;
    void to_host(void* host_dst, const void* src, size_t bytes) override;
    void from_host(void* dst, const void* host_src, size_t bytes) override;
    size_t held_bytes() const override { return allocated_; }
    size_t peak_bytes() const override { return peak_; }
    uint64_t layout_version() const override { return version_; }

  private:
    // Throws Error naming `what` while the stream is recorded (Ops::record()).
    void refuse_while_recording(const char* what, size_t bytes) const;

    cudaStream_t stream_;
    std::unordered_map<void*, size_t> sizes_; // cudaMalloc does not report a block's size
    size_t allocated_ = 0, peak_ = 0;
    uint64_t version_ = 0;
};

} // namespace octet::cuda
