// Octet's Hopper FP8 GEMM for operands scaled along K (docs/microscaled-gemm.md):
//   out[m, n] = alpha · Σ_k a[m, k] · sa(m, k) · b[n, k] · sb(n, k) + bias[n] + beta · c[m, n]
// a: FP8 codes with one scale per row and per group of G = 32 or 128 along K (DeepSeek's 1×128,
// MOSS's local scales, MX's 1×32). b: E4M3 codes with one scale for the whole tensor (folded into
// alpha: MOSS's predicted weight scale), 128×128 block scales (DeepSeek's weights), or, like a,
// one per row and group (wgrad's xᵀ, MX). alpha, on the device, carries the scales that do not
// vary (MOSS's global scales) and is applied once in the epilogue.
//
// Octet's own kernel, written against the hardware (cuda/hopper.cuh): a TMA producer warp feeds
// a ring of shared-memory stages; two consumer warpgroups run WGMMA on 64 rows each of both
// 128-row waves of a 256×128 tile and promote the FP32 partial sums of every group into their
// accumulators with the group's scales, one warpgroup's promotion under the other's WGMMAs; the
// output leaves through shared memory in whole rows; persistent CTAs walk the tiles in bands that
// share operands in L2. Any m, n, k: a k that is not a multiple of 16 (TMA's row pitch) is padded
// in workspace with zero codes.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

#include "numerics/formats.h"
#include "ops/memory.h"

namespace octet::cuda {

enum class MicroscaledB { per_tensor, blocks_128x128, groups };

struct MicroscaledGemmArgs {
    const uint8_t* a;      // [m, k], a_format (E4M3 or E5M2)
    const uint8_t* b;      // [n, k], E4M3
    const float* a_scales; // [ceil(k/group)][microscaled_scale_stride(m)], rows fastest
    // per_tensor: unused; blocks_128x128: [ceil(k/128)][ceil(n/128)];
    // groups: [ceil(k/group)][microscaled_scale_stride(n)]
    const float* b_scales;
    MicroscaledB b_scaling;
    int group;          // G: 32 or 128
    Format a_format;    // e4m3, or e5m2 for gradients
    const float* alpha; // device scalar, or nullptr for 1
    void* out;          // [m, n] row-major: BF16, or FP32 when out_fp32
    bool out_fp32;
    float beta; // times c (FP32 output only)
    int64_t m, n, k;
    // Added to each row before the output is rounded (a linear layer's bias), or nullptr.
    const float* bias = nullptr;
    // FP32 [m, n] added times beta (the residual stream), or nullptr for out itself (accumulate).
    const float* c = nullptr;
};

// The row stride of a scale grid with rows along M or N: TMA loads it, so rows are padded to 16
// bytes. Padding entries only scale output that is never stored.
inline int64_t microscaled_scale_stride(int64_t rows) {
    return (rows + 3) / 4 * 4;
}

class MicroscaledGemm {
  public:
    explicit MicroscaledGemm(Memory& memory);
    // Throws Error naming what is wrong (shape, group, format, scaling).
    void run(const MicroscaledGemmArgs& args, cudaStream_t stream);

  private:
    Buffer<uint8_t> a_padded_, b_padded_;
    Buffer<float> partials_; // K split where the output has too few tiles to fill the SMs
    int sm_count_ = 0;
};

} // namespace octet::cuda
