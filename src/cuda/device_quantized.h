// A quantized tensor in GPU memory: the device twin of numerics/quantized_tensor.h, with the same
// layout (row-major codes, each scale level a row-major grid of scale_inv values). Its buffers
// are kept and reused from step to step; a tensor is rewritten in place by the kernels that
// produce it (cuda/quantize_plan.h, cuda/fp8_transpose.h).
#pragma once

#include <array>
#include <cstdint>
#include <cuda_runtime.h>

#include "numerics/quantized_tensor.h"
#include "ops/memory.h"
#include "recipe/moss.h"

namespace octet::cuda {

struct DeviceScaleGrid {
    explicit DeviceScaleGrid(Memory& memory) : scale_inv(memory) {}
    int64_t block_rows = 1, block_cols = 1, grid_rows = 0, grid_cols = 0;
    ScaleEncoding encoding = ScaleEncoding::fp32;
    // Every value is a power of two by construction (E8M0, a power-of-two rule, or derived from
    // such a level): a BF16 product with an FP8 code is then exact (see scaled_gemm.h).
    bool pow2 = false;
    Buffer<float> scale_inv;

    // Shape the grid for a rows × cols tensor (block dimensions already resolved, ≥ 1).
    void shape(int64_t rows, int64_t cols, int64_t block_rows_, int64_t block_cols_,
               ScaleEncoding encoding_, bool pow2_);
    // One scale for the whole tensor.
    bool whole() const { return grid_rows <= 1 && grid_cols <= 1; }
};

// What a kernel needs of a level: where its scales are and which block an element falls in.
struct LevelView {
    const float* scale_inv;
    int64_t block_rows, block_cols, grid_cols;
};
constexpr int max_scale_levels = 2; // MOSS: local E8M0 and global FP32

// The product of the levels' scale_inv at (row, col).
struct LevelViews {
    LevelView level[max_scale_levels];
    int count;
    __host__ __device__ float at(int64_t row, int64_t col) const {
        float s = 1.0f;
        for (int i = 0; i < count; ++i)
            s *= level[i].scale_inv[(row / level[i].block_rows) * level[i].grid_cols +
                                    col / level[i].block_cols];
        return s;
    }
};

struct DeviceQuantized {
    explicit DeviceQuantized(Memory& memory)
        : codes(memory), levels{DeviceScaleGrid(memory), DeviceScaleGrid(memory)} {}
    Format format = Format::e4m3;
    int64_t rows = 0, cols = 0;
    Buffer<uint8_t> codes;
    std::array<DeviceScaleGrid, max_scale_levels> levels;
    int level_count = 0;

    int64_t numel() const { return rows * cols; }
    // Shape it as a rows × cols tensor of `format` codes with one level of scales (block
    // dimensions resolved, ≥ 1); returns that level.
    DeviceScaleGrid& shape_one_level(Format format_, int64_t rows_, int64_t cols_,
                                     int64_t block_rows, int64_t block_cols, ScaleEncoding encoding,
                                     bool pow2);
    // Shape it as a rows × cols tensor under MOSS's two levels (recipe/moss.h): E8M0 local
    // scales per 1 × group, then FP32 global ones per global_rows rows (0: the whole tensor).
    void shape_two_level(int64_t rows_, int64_t cols_, const TwoLevelOptions& options);
    // Levels for kernels: all of them, those that vary over the tensor, or those with one scale
    // for the whole tensor.
    enum class Levels { all, varying, whole };
    LevelViews views(Levels which = Levels::all) const;
    // A copy on the host (tests, debugging).
    QuantizedTensor download() const;
};

// out = decode(code) · Π levels, as FP32 [rows, cols].
void dequantize(const DeviceQuantized& q, float* out, cudaStream_t stream);

} // namespace octet::cuda
