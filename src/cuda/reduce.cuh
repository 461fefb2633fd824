// Reductions shared by the CUDA kernels: warp and block sums and maxima, and deterministic column
// sums over rows (parameter gradients of norms and biases) in two passes with a fixed order, so
// results do not change from run to run.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

namespace octet::cuda {

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
    return v;
}

// Max over each aligned segment of `lanes` lanes (a power of two ≤ 32), every lane of it gets it.
template <int lanes>
__device__ __forceinline__ float segment_max(float v) {
    for (int offset = lanes / 2; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    return segment_max<32>(v);
}

// warp_reduce over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// `identity` stands in for the missing warps.
template <typename T, typename WarpReduce>
__device__ T block_reduce(T v, T identity, WarpReduce warp_reduce) {
    __shared__ T partial[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_reduce(v);
    __syncthreads(); // partial may still be read by a previous call
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : identity;
    return warp_reduce(v);
}

template <typename T>
__device__ T block_sum(T v) {
    return block_reduce(v, T(0), [](T x) { return warp_sum(x); });
}

// Two sums over the block at once (one pair of barriers); every thread gets both.
__device__ inline float2 block_sum2(float a, float b) {
    return block_reduce(make_float2(a, b), make_float2(0.0f, 0.0f),
                        [](float2 x) { return make_float2(warp_sum(x.x), warp_sum(x.y)); });
}

// Non-negative values (amaxes): 0 stands in for the missing warps.
__device__ inline float block_max(float v) {
    return block_reduce(v, 0.0f, [](float x) { return warp_max(x); });
}

// Rows per slice of a column sum: enough slices to fill the GPU, a fixed count for a shape.
constexpr int column_sum_threads = 256;
constexpr int64_t column_sum_slices = 128;

// partial[slice, col] = Σ over the slice's rows of f(row, col).
template <typename F>
__global__ void column_partials_kernel(float* partial, int64_t rows, int64_t cols, F f) {
    const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    const int64_t per = (rows + gridDim.y - 1) / gridDim.y;
    const int64_t r0 = int64_t(blockIdx.y) * per, r1 = r0 + per < rows ? r0 + per : rows;
    float acc = 0.0f;
    for (int64_t r = r0; r < r1; ++r) acc += f(r, col);
    partial[int64_t(blockIdx.y) * cols + col] = acc;
}

// out[col] += Σ_slices partial[slice, col], in a fixed order (normalization.cu).
void column_finish(float* out, const float* partial, int64_t slices, int64_t cols,
                   cudaStream_t stream);

// out[col] += Σ_rows f(row, col); `scratch` holds column_sum_slices · cols floats.
template <typename F>
void column_sum(float* out, int64_t rows, int64_t cols, float* scratch, cudaStream_t stream, F f) {
    const int64_t slices = rows < column_sum_slices ? rows : column_sum_slices;
    const dim3 grid(unsigned((cols + column_sum_threads - 1) / column_sum_threads),
                    unsigned(slices));
    column_partials_kernel<<<grid, column_sum_threads, 0, stream>>>(scratch, rows, cols, f);
    column_finish(out, scratch, slices, cols, stream);
}

} // namespace octet::cuda
