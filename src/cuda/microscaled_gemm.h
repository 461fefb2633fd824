// Octet's Hopper FP8 GEMM for operands scaled along K (docs/microscaled-gemm.md):
//   out[m, n] = alpha · Σ_k a[m, k] · sa(m, k) · b[n, k] · sb(n, k)  (+ beta · out)
// a: E4M3 codes with one scale per row and 128 columns of K (DeepSeek 1×128, MOSS G=128 local
// scales); b: E4M3 codes with 128×128 block scales (weights; a per-tensor weight scale is a grid
// of equal blocks) or 1×128 groups along K (wgrad's xᵀ). alpha, on the device, carries the
// scales that do not vary (MOSS's global scales), applied once in the epilogue.
//
// A warp-specialized WGMMA kernel from CUTLASS's Hopper block-scaled mainloop: TMA producer warp,
// two consumer warpgroups, FP32 partial sums promoted with their scales every 128 of K, persistent
// tile scheduler. Any m, n, k: TMA needs 16-byte row pitches, so k not a multiple of 16, and n
// whose output rows are not a multiple of 16 bytes, are padded in workspace with zero codes.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

#include "ops/memory.h"

namespace octet::cuda {

enum class MicroscaledB { blocks_128x128, groups_1x128 };

struct MicroscaledGemmArgs {
    const uint8_t* a;      // [m, k] E4M3
    const uint8_t* b;      // [n, k] E4M3
    const float* a_scales; // [ceil(k/128)][microscaled_a_scale_stride(m)], rows fastest
    const float* b_scales; // blocks: [ceil(k/128)][ceil(n/128)]; groups: [ceil(k/128)][n]
    MicroscaledB b_scaling;
    const float* alpha; // device scalar, or nullptr for 1
    void* out;          // [m, n] row-major: BF16, or FP32 when out_fp32
    bool out_fp32;
    float beta; // out = alpha · a·bᵀ + beta · out
    int64_t m, n, k;
};

// The row stride of a's scale grid: TMA loads it, so rows are padded to 16 bytes.
inline int64_t microscaled_a_scale_stride(int64_t m) {
    return (m + 3) / 4 * 4;
}

class MicroscaledGemm {
  public:
    explicit MicroscaledGemm(Memory& memory);
    // Throws Error naming what is wrong (shape, scaling) or the CUTLASS status.
    void run(const MicroscaledGemmArgs& args, cudaStream_t stream);

  private:
    Buffer<uint8_t> a_padded_, b_padded_, out_padded_, workspace_;
    Buffer<float> b_scales_padded_;
    int sm_count_ = 0;
};

} // namespace octet::cuda
