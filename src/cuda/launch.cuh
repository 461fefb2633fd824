// Launch shapes shared by the elementwise and row-wise kernels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "cuda/check.h"

namespace octet::cuda {

constexpr int elementwise_threads = 256;

inline unsigned blocks_for(int64_t n, int64_t per_block) {
    return unsigned((n + per_block - 1) / per_block);
}

// The current device's SM count: what persistent kernels size their grids by.
inline int current_device_sm_count() {
    int device = 0, count = 0;
    OCTET_CUDA_CHECK(cudaGetDevice(&device));
    OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    return count;
}

// One warp per row, 8 rows per block.
constexpr int rows_per_block = 8;

// The row this warp handles, and the thread's lane in it.
struct RowWarp {
    int64_t row;
    int lane;
};

__device__ __forceinline__ RowWarp row_warp() {
    return {int64_t(blockIdx.x) * rows_per_block + threadIdx.x / 32, int(threadIdx.x % 32)};
}

// After a launch: a bad configuration is reported with the call site.
#define OCTET_CUDA_LAUNCHED() OCTET_CUDA_CHECK(cudaGetLastError())

template <typename F>
__global__ void elementwise_kernel(int64_t n, F f) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x)
        f(i);
}

// f(i) for i in [0, n), a grid-stride loop over at most 65536 blocks.
template <typename F>
void for_each(int64_t n, cudaStream_t stream, F f) {
    if (n <= 0) return;
    const unsigned blocks = std::min(blocks_for(n, elementwise_threads), 65536u);
    elementwise_kernel<<<blocks, elementwise_threads, 0, stream>>>(n, f);
    OCTET_CUDA_LAUNCHED();
}

__host__ __device__ inline bool aligned_to(const void* p, size_t bytes) {
    return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// Elementwise work in groups of four elements: f4(q) for q in [0, n / 4) covers elements 4q …
// 4q + 3 through wide loads and stores, f(i) the last n % 4 one by one. Where the caller's
// pointers are not aligned for the wide accesses (`vectors` false), f covers all n.
template <typename F4, typename F>
void for_each_quad(int64_t n, bool vectors, cudaStream_t stream, F4 f4, F f) {
    if (!vectors) return for_each(n, stream, f);
    for_each(n / 4, stream, f4);
    const int64_t tail = n / 4 * 4;
    for_each(n - tail, stream, [=] __device__(int64_t i) { f(tail + i); });
}

} // namespace octet::cuda
