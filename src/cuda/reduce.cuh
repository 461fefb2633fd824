// Reductions shared by the CUDA kernels: warp and block sums and maxima, and deterministic column
// sums over rows (parameter gradients of norms and biases) in two passes with a fixed order, so
// results do not change from run to run.
#pragma once

#include <algorithm>
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

// The rows [begin, end) of slice `slice` of `slices` equal ones.
struct SliceRows {
    int64_t begin, end;
};

__device__ inline SliceRows slice_rows(int64_t rows, int64_t slice, int64_t slices) {
    const int64_t per = (rows + slices - 1) / slices;
    const int64_t begin = slice * per;
    return {begin, begin + per < rows ? begin + per : rows};
}

// partial[slice, col] = Σ over the slice's rows of f(row, col).
template <typename F>
__global__ void column_partials_kernel(float* partial, int64_t rows, int64_t cols, F f) {
    const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    const auto [r0, r1] = slice_rows(rows, blockIdx.y, gridDim.y);
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

// Column sums four columns to a thread (16-byte accesses along rows of cols % 4 == 0 floats).
// A thread then covers four times the columns, so slices grow until slices · cols / 4 threads
// keep the memory busy; fixed for a shape, like the order of the sums.
inline int64_t column_quad_slices(int64_t rows, int64_t cols) {
    const int64_t wanted =
        std::max<int64_t>(column_sum_slices, (int64_t(1) << 17) / (cols / 4 + 1));
    return std::max<int64_t>(std::min<int64_t>({rows, wanted, 4096}), 1);
}

// partial[slice, 4q … 4q + 3] = Σ over the slice's rows of f4(row, q), a float4 of columns
// 4q … 4q + 3.
template <typename F4>
__global__ void column_quad_partials_kernel(float* partial, int64_t rows, int64_t cols, F4 f4) {
    const int64_t q = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (q >= cols / 4) return;
    const auto [r0, r1] = slice_rows(rows, blockIdx.y, gridDim.y);
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
    for (int64_t r = r0; r < r1; ++r) {
        const float4 v = f4(r, q);
        acc = make_float4(acc.x + v.x, acc.y + v.y, acc.z + v.z, acc.w + v.w);
    }
    reinterpret_cast<float4*>(partial + int64_t(blockIdx.y) * cols)[q] = acc;
}

// out[col] += Σ_rows of f4's values (cols % 4 == 0); `scratch`, 16-byte aligned, holds
// column_quad_slices(rows, cols) · cols floats.
template <typename F4>
void column_quad_sum(float* out, int64_t rows, int64_t cols, float* scratch, cudaStream_t stream,
                     F4 f4) {
    const int64_t slices = column_quad_slices(rows, cols);
    const dim3 grid(unsigned((cols / 4 + column_sum_threads - 1) / column_sum_threads),
                    unsigned(slices));
    column_quad_partials_kernel<<<grid, column_sum_threads, 0, stream>>>(scratch, rows, cols, f4);
    column_finish(out, scratch, slices, cols, stream);
}

} // namespace octet::cuda
