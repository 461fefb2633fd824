// Transposing traversals: out[c · rows + r] = f(r, c) over a rows × cols input, through 32×32
// tiles in shared memory, so that f reads along the input's rows and the writes go along the
// output's rows: both coalesced (a plain element-wise loop makes one of them strided).
#pragma once

#include <cstdint>

#include "cuda/launch.cuh"

namespace octet::cuda {

constexpr int transpose_tile = 32, transpose_tile_rows = 8;

template <typename T, typename F>
__global__ void tiled_transpose_kernel(int64_t rows, int64_t cols, T* out, F f) {
    __shared__ T tile[transpose_tile][transpose_tile + 1];
    const int64_t r0 = int64_t(blockIdx.y) * transpose_tile,
                  c0 = int64_t(blockIdx.x) * transpose_tile;
    for (int j = threadIdx.y; j < transpose_tile; j += transpose_tile_rows) {
        const int64_t r = r0 + j, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[j][threadIdx.x] = f(r, c);
    }
    __syncthreads();
    for (int j = threadIdx.y; j < transpose_tile; j += transpose_tile_rows) {
        const int64_t c = c0 + j, r = r0 + threadIdx.x;
        if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][j];
    }
}

template <typename T, typename F>
void tiled_transpose(int64_t rows, int64_t cols, T* out, cudaStream_t stream, F f) {
    if (rows <= 0 || cols <= 0) return;
    const dim3 grid(blocks_for(cols, transpose_tile), blocks_for(rows, transpose_tile));
    tiled_transpose_kernel<<<grid, dim3(transpose_tile, transpose_tile_rows), 0, stream>>>(
        rows, cols, out, f);
    OCTET_CUDA_LAUNCHED();
}

} // namespace octet::cuda
