// A 128 × 64 tile of a device quantized tensor, dequantized into shared memory by a block of 256
// threads: the values dequantize() gives (decode(code) · Π levels, the product in LevelViews::at's
// order), for the kernels that then read it along columns (transposes). Decoding goes through a
// 256-entry table and each level's block index is computed once per tile row and column: per
// element, the general codec and 64-bit divisions would make these kernels ALU-bound.
#pragma once

#include <cstdint>

#include "cuda/device_quantized.h"
#include "numerics/formats.h"

namespace octet::cuda {

constexpr int dequantized_tile_rows = 128, dequantized_tile_cols = 64,
              dequantized_tile_threads = 256;

struct DequantizedTile {
    // A padded row keeps reads along columns free of bank conflicts.
    float value[dequantized_tile_rows][dequantized_tile_cols + 1];
    float decoded[256];
    int64_t row_cell[max_scale_levels][dequantized_tile_rows];
    int64_t col_cell[max_scale_levels][dequantized_tile_cols];
};

// The tile a block of the grid dequantized_tile_grid() gives takes: block (x, y) holds rows
// [128 y, 128 y + 128) and columns [64 x, 64 x + 64).
struct TileOrigin {
    int64_t r0, c0;
};

inline dim3 dequantized_tile_grid(int64_t rows, int64_t cols) {
    return dim3(unsigned((cols + dequantized_tile_cols - 1) / dequantized_tile_cols),
                unsigned((rows + dequantized_tile_rows - 1) / dequantized_tile_rows));
}

// Fills `t` with this block's tile (zeros outside the tensor); all 256 threads of the block call
// it, and it returns with the tile ready and where it lies.
__device__ inline TileOrigin load_dequantized_tile(DequantizedTile& t, const uint8_t* codes,
                                                   const LevelViews& levels, Format format,
                                                   int64_t rows, int64_t cols) {
    const int64_t r0 = int64_t(blockIdx.y) * dequantized_tile_rows,
                  c0 = int64_t(blockIdx.x) * dequantized_tile_cols;
    constexpr int tr = dequantized_tile_rows, tc = dequantized_tile_cols,
                  threads = dequantized_tile_threads;
    static_assert(threads == 256, "one thread per code of the decode table");
    t.decoded[threadIdx.x] = decode(threadIdx.x, format);
    for (int i = threadIdx.x; i < levels.count * tr; i += threads) {
        const LevelView& l = levels.level[i / tr];
        t.row_cell[i / tr][i % tr] = (r0 + i % tr) / l.block_rows * l.grid_cols;
    }
    for (int i = threadIdx.x; i < levels.count * tc; i += threads) {
        const LevelView& l = levels.level[i / tc];
        t.col_cell[i / tc][i % tc] = (c0 + i % tc) / l.block_cols;
    }
    __syncthreads();
    // Four codes per thread: one 32-bit load where the row allows it.
    const bool words = cols % 4 == 0;
    for (int k4 = threadIdx.x; k4 < tr * tc / 4; k4 += threads) {
        const int rr = k4 / (tc / 4), cc = k4 % (tc / 4) * 4;
        const int64_t r = r0 + rr, c = c0 + cc;
        uint8_t q[4] = {0, 0, 0, 0};
        if (r < rows && words && c < cols) {
            const uint32_t w = *reinterpret_cast<const uint32_t*>(codes + r * cols + c);
            for (int k = 0; k < 4; ++k) q[k] = uint8_t(w >> (8 * k));
        } else if (r < rows) {
            for (int k = 0; k < 4; ++k)
                if (c + k < cols) q[k] = codes[r * cols + c + k];
        }
        // The four codes' scales, level by level in LevelViews::at's order: one read where they
        // share the level's block (every recipe's blocks are 4-aligned), else one each.
        float scale[4] = {1.0f, 1.0f, 1.0f, 1.0f};
        for (int i = 0; r < rows && c < cols && i < levels.count; ++i) {
            const float* level = levels.level[i].scale_inv + t.row_cell[i][rr];
            const int64_t first = t.col_cell[i][cc];
            if (first == t.col_cell[i][cc + 3]) {
                const float s = level[first];
                for (int k = 0; k < 4; ++k) scale[k] *= s;
            } else {
                for (int k = 0; k < 4; ++k)
                    if (c + k < cols) scale[k] *= level[t.col_cell[i][cc + k]];
            }
        }
        for (int k = 0; k < 4; ++k)
            t.value[rr][cc + k] = r < rows && c + k < cols ? t.decoded[q[k]] * scale[k] : 0.0f;
    }
    __syncthreads();
    return {r0, c0};
}

// f(cc, lane) for the tile's columns inside the tensor, each column to one whole warp (its lanes
// then read the column's rows lane, lane + 32, …: free of bank conflicts).
template <typename F>
__device__ inline void for_each_tile_column(TileOrigin o, int64_t cols, F f) {
    const int lane = int(threadIdx.x % 32);
    for (int cc = int(threadIdx.x / 32); cc < dequantized_tile_cols && o.c0 + cc < cols;
         cc += dequantized_tile_threads / 32)
        f(cc, lane);
}

} // namespace octet::cuda
