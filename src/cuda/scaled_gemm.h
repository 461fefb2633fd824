// FP8 GEMMs of device quantized operands: out[n, m] (+)= a[n, K] · b[m, K]ᵀ in FP32, the CPU's
// scaled_gemm_nt (cpu/linear.cpp) on the GPU. Both operands have their groups along K (the
// forward's x and W, dgrad's dy and Wᵀ, wgrad's dyᵀ and xᵀ).
//
// Each operand's scale levels are classified by how they vary, and a pair runs the way cuBLASLt
// can run it, every level folded into the scales it is given:
//   per_tensor  nothing varies             both: per-tensor scalars
//   per_row     rows only                  with per_row/per_tensor: outer vectors (row-wise)
//   k128        K in blocks of 128         a as 1×128 vectors, b as 128×128 blocks where b's
//   tile128     128×128 tiles              scales are constant on those, else 1×128 too
//   other       anything else: 1×32 (MX, MOSS G=32), odd group sizes
// A pair with an `other` operand, or a shape cuBLASLt's FP8 GEMMs do not take (K or b's rows
// not a multiple of 16, a's rows not a multiple of 4 for block scales, E5M2 × E5M2), is
// emulated (docs/recipes.md): with BF16 operands when every level that varies is a power of
// two (an FP8 code times 2^k is then a BF16 value, exactly, for products down to 2^-130), the
// per-tensor levels applied by the GEMM's epilogue as alpha; otherwise with FP32 operands.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/device_quantized.h"
#include "cuda/gemm.h"

namespace octet::cuda {

enum class ScaledGemmPath { per_tensor, outer_vector, blockwise, blockwise_1d, bf16, fp32 };
const char* scaled_gemm_path_name(ScaledGemmPath p);

class ScaledGemm {
  public:
    ScaledGemm(CublasLtGemm& gemm, Memory& memory)
        : gemm_(gemm), a_scales_(memory), b_scales_(memory), a_bf16_(memory), b_bf16_(memory),
          a_fp32_(memory), b_fp32_(memory) {}

    // fast_accum: per-tensor GEMMs skip split accumulation (TE does it for fprop only).
    ScaledGemmPath run(const DeviceQuantized& a, const DeviceQuantized& b, float* out,
                       bool accumulate, bool fast_accum, cudaStream_t stream);

    // The path run() takes for these operands, without running it.
    static ScaledGemmPath path(const DeviceQuantized& a, const DeviceQuantized& b);

  private:
    void emulate(const DeviceQuantized& a, const DeviceQuantized& b, float* out, bool accumulate,
                 bool bf16, cudaStream_t stream);

    CublasLtGemm& gemm_;
    Buffer<float> a_scales_, b_scales_;
    Buffer<__nv_bfloat16> a_bf16_, b_bf16_;
    Buffer<float> a_fp32_, b_fp32_;
};

} // namespace octet::cuda
