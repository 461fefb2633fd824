// DeviceMemory (see device_memory.h).
#include "cuda/check.h"
#include "cuda/device_memory.h"
#include "cuda/graph.h"

namespace octet::cuda {

// A recorded graph would keep the pointers and the decisions of the moment it was recorded:
// what an op allocates or reads back there is a bug of that op, named here.
void DeviceMemory::refuse_while_recording(const char* what, size_t bytes) const {
    if (capturing(stream_))
        throw Error(std::string(what) + " of " + std::to_string(bytes) +
                    " bytes while recording a CUDA graph: the step's buffers must exist, and its "
                    "results stay on the device, until the recorded ops have run");
}

void* DeviceMemory::allocate(size_t bytes) {
    void* p = nullptr;
    if (bytes == 0) return nullptr;
    refuse_while_recording("an allocation", bytes);
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        size_t free_bytes = 0, total_bytes = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_bytes, &total_bytes);
        throw Error("GPU out of memory: cannot allocate " + std::to_string(bytes >> 20) + " MiB (" +
                    std::to_string(free_bytes >> 20) + " of " + std::to_string(total_bytes >> 20) +
                    " MiB free, " + std::to_string(allocated_ >> 20) + " MiB held by Octet)");
    }
    sizes_[p] = bytes;
    ++version_;
    allocated_ += bytes;
    peak_ = allocated_ > peak_ ? allocated_ : peak_;
    return p;
}

void DeviceMemory::release(void* p) noexcept {
    if (!p) return;
    ++version_;
    auto it = sizes_.find(p);
    if (it != sizes_.end()) {
        allocated_ -= it->second;
        sizes_.erase(it);
    }
    cudaFree(p); // synchronizes: pending kernels that use p finish first
}

void DeviceMemory::zero(void* p, size_t bytes) {
    if (bytes) OCTET_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
}

void DeviceMemory::copy(void* dst, const void* src, size_t bytes) {
    if (bytes)
        OCTET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void DeviceMemory::to_host(void* host_dst, const void* src, size_t bytes) {
    if (!bytes) return;
    refuse_while_recording("a copy to the host", bytes);
    OCTET_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void DeviceMemory::from_host(void* dst, const void* host_src, size_t bytes) {
    if (!bytes) return;
    refuse_while_recording("a copy from the host", bytes);
    OCTET_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
    // The host buffer may be freed as soon as this returns.
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

} // namespace octet::cuda
