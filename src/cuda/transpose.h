// FP8-Flow-MoE's scaling-aware transpose on the GPU (recipe/transpose.h has the rules and the CPU
// oracle): FP8 codes [rows, cols] with power-of-two 1×128 scales in, the transposed codes
// [cols, rows] with 1×128 scales along the new rows out — no dequantize, no amax pass. Bit for bit
// the CPU's result, subnormals rounded to nearest-even.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

#include "numerics/formats.h"

namespace octet::cuda {

struct ScalingAwareTransposeArgs {
    const uint8_t* codes;   // [rows, cols]
    const float* scale_inv; // [rows, ceil(cols / 128)], powers of two
    int64_t rows, cols;
    Format format;        // e4m3 or e5m2
    uint8_t* out_codes;   // [cols, rows]
    float* out_scale_inv; // [cols, ceil(rows / 128)]
};

void transpose_scaling_aware(const ScalingAwareTransposeArgs& a, cudaStream_t stream);

} // namespace octet::cuda
