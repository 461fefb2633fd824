// A 128 × 64 tile of an FP32 tensor in shared memory, loaded by a block of 256 threads, for the
// kernels that then read it along columns: the transposes that quantize a tensor's other
// orientation from the tensor itself (fp8_transpose.cu).
#pragma once

#include <cstdint>

#include "cuda/launch.cuh"

namespace octet::cuda {

constexpr int source_tile_rows = 128, source_tile_cols = 64, source_tile_threads = 256;

struct SourceTile {
    // A padded row keeps reads along columns free of bank conflicts.
    float value[source_tile_rows][source_tile_cols + 1];
};

// The tile a block of the grid source_tile_grid() gives takes: block (x, y) holds rows
// [128 y, 128 y + 128) and columns [64 x, 64 x + 64).
struct TileOrigin {
    int64_t r0, c0;
};

inline dim3 source_tile_grid(int64_t rows, int64_t cols) {
    return dim3(unsigned((cols + source_tile_cols - 1) / source_tile_cols),
                unsigned((rows + source_tile_rows - 1) / source_tile_rows));
}

// Fills `t` with this block's tile of x [rows, cols] (zeros outside the tensor); all 256 threads
// of the block call it, and it returns with the tile ready and where it lies. Where rows are
// whole float4s (cols % 4 == 0, x 16-byte aligned), each thread issues its eight 16-byte loads
// before storing any, so a block has the whole 32 KiB tile in flight at once; half-warps read
// 256 contiguous bytes of a row. Otherwise element by element, each warp reading 128 bytes.
__device__ inline TileOrigin load_source_tile(SourceTile& t, const float* x, int64_t rows,
                                              int64_t cols) {
    const int64_t r0 = int64_t(blockIdx.y) * source_tile_rows,
                  c0 = int64_t(blockIdx.x) * source_tile_cols;
    if (cols % 4 == 0 && aligned_to(x, 16)) {
        constexpr int quads_per_row = source_tile_cols / 4,
                      per_thread = source_tile_rows * quads_per_row / source_tile_threads;
        float4 v[per_thread];
#pragma unroll
        for (int k = 0; k < per_thread; ++k) {
            const int i = threadIdx.x + k * source_tile_threads;
            const int64_t r = r0 + i / quads_per_row, c = c0 + 4 * (i % quads_per_row);
            v[k] = r < rows && c < cols ? *reinterpret_cast<const float4*>(x + r * cols + c)
                                        : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int k = 0; k < per_thread; ++k) {
            const int i = threadIdx.x + k * source_tile_threads;
            float* row = &t.value[i / quads_per_row][4 * (i % quads_per_row)];
            row[0] = v[k].x;
            row[1] = v[k].y;
            row[2] = v[k].z;
            row[3] = v[k].w;
        }
    } else {
        for (int i = threadIdx.x; i < source_tile_rows * source_tile_cols;
             i += source_tile_threads) {
            const int rr = i / source_tile_cols, cc = i % source_tile_cols;
            const int64_t r = r0 + rr, c = c0 + cc;
            t.value[rr][cc] = r < rows && c < cols ? x[r * cols + c] : 0.0f;
        }
    }
    __syncthreads();
    return {r0, c0};
}

// f(cc, lane) for the tile's columns inside the tensor, each column to one whole warp (its lanes
// then read the column's rows lane, lane + 32, …: free of bank conflicts).
template <typename F>
__device__ inline void for_each_tile_column(TileOrigin o, int64_t cols, F f) {
    const int lane = int(threadIdx.x % 32);
    for (int cc = int(threadIdx.x / 32); cc < source_tile_cols && o.c0 + cc < cols;
         cc += source_tile_threads / 32)
        f(cc, lane);
}

} // namespace octet::cuda
