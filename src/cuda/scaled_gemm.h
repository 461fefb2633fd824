// FP8 GEMMs of device quantized operands: out[n, m] (+)= a[n, K] · b[m, K]ᵀ in FP32, the CPU's
// scaled_gemm_nt (cpu/linear.cpp) on the GPU. Both operands have their groups along K (the
// forward's x and W, dgrad's dy and Wᵀ, wgrad's dyᵀ and xᵀ).
//
// A pair runs the fastest way that takes it, every scale level folded into the scales it is
// given:
//   per-tensor      both operands' scales constant (cuBLASLt, per-tensor scalars)
//   outer-vector    scales that vary over rows only (cuBLASLt's row-wise scaling)
//   microscaled     everything else whose scales are constant on 1×G groups along K, G = 128 or
//                   32 (DeepSeek's 1×128 with 128×128 weights, MOSS's two levels, MX 1×32), b
//                   in E4M3: Octet's own GEMM (microscaled_gemm.h), which promotes the tensor
//                   cores' partial sums into FP32 every group
//   emulated        the rest (groups along K of other sizes; an E5M2 b outside cuBLASLt's
//                   per-tensor and row-wise GEMMs): with BF16 operands when every level that
//                   varies is a power of two (an FP8 code times 2^k is then a BF16 value, exactly,
//                   for products down to 2^-130), the per-tensor levels applied by the GEMM's
//                   epilogue as alpha; otherwise with FP32 operands (docs/recipes.md).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/device_quantized.h"
#include "cuda/gemm.h"
#include "cuda/microscaled_gemm.h"

namespace octet::cuda {

enum class ScaledGemmPath { per_tensor, outer_vector, microscaled, bf16, fp32 };
const char* scaled_gemm_path_name(ScaledGemmPath p);

// Where the product goes: out[n, m] = a · bᵀ + bias + add, in FP32 or rounded to BF16 (a linear
// layer's output for the op that reads it in BF16). The microscaled GEMM adds bias and `add` in
// its epilogue; the other paths accumulate into `out` itself in theirs and add the rest in a pass.
struct ScaledGemmOutput {
    void* out;
    bool bf16 = false;
    const float* bias = nullptr; // [m], or nullptr
    const float* add = nullptr;  // FP32 [n, m] (`out` itself accumulates), or nullptr; FP32 out
};

class ScaledGemm {
  public:
    ScaledGemm(CublasLtGemm& gemm, Memory& memory)
        : gemm_(gemm), microscaled_(memory), a_scales_(memory), b_scales_(memory), a_bf16_(memory),
          b_bf16_(memory), a_fp32_(memory), b_fp32_(memory), product_(memory) {}

    // fast_accum: per-tensor GEMMs skip split accumulation (TE does it for fprop only); the
    // microscaled GEMM promotes every group regardless.
    ScaledGemmPath run(const DeviceQuantized& a, const DeviceQuantized& b,
                       const ScaledGemmOutput& out, bool fast_accum, cudaStream_t stream);

    // The path run() takes for these operands, without running it.
    static ScaledGemmPath path(const DeviceQuantized& a, const DeviceQuantized& b);

  private:
    void run_microscaled(const DeviceQuantized& a, const DeviceQuantized& b, int group,
                         MicroscaledB b_scaling, const ScaledGemmOutput& out, cudaStream_t stream);
    void run_cublaslt(const DeviceQuantized& a, const DeviceQuantized& b, ScaledGemmPath p,
                      float* out, bool accumulate, bool fast_accum, cudaStream_t stream);
    void emulate(const DeviceQuantized& a, const DeviceQuantized& b, float* out, bool accumulate,
                 bool bf16, cudaStream_t stream);

    CublasLtGemm& gemm_;
    MicroscaledGemm microscaled_;
    Buffer<float> a_scales_, b_scales_;
    Buffer<__nv_bfloat16> a_bf16_, b_bf16_;
    Buffer<float> a_fp32_, b_fp32_;
    Buffer<float> product_; // the FP32 product of a BF16 output outside the microscaled GEMM
};

} // namespace octet::cuda
