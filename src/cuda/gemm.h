// GEMMs through cuBLASLt in the TN layout (both operands K-contiguous, the only FP8 layout
// Hopper's tensor cores take): out[m, n] = a[m, k] · b[n, k]ᵀ, BF16 or FP32 output.
//   bf16          BF16 operands
//   per_tensor    FP8 operands, one FP32 scale_inv each (TE per-tensor recipes)
//   outer_vector  FP8, one scale_inv per row of a and per row of b (row-wise)
//   blockwise     FP8, a with 1×128 scales along K (activations, gradients), b with 128×128 block
//                 scales (weights): DeepSeek-V3 / TE Float8BlockScaling; the recipes run Octet's
//                 microscaled GEMM (scaled_gemm.h), `octet bench gemm` compares the two
// Scale layouts cuBLASLt 13.1 expects (found by probing on an H100; tests/cuda/test_gemm.cu
// holds them): 1×128 scales as [ceil(k/128)][rows] (rows fastest); b's 128×128 scales as
// [ceil(n/128)][ceil(k/128) rounded up to a multiple of 4] (k-blocks fastest, rows padded to 16
// bytes). blockwise_scale_layout() converts from QuantizedTensor grids. Block-wise GEMMs with m
// not a multiple of 4 are refused: their layout is unverified.
// Dense row-major GEMMs (DenseGemmArgs) serve the FP32 and BF16 linear layers and attention:
// any transposes, FP32 output accumulated with beta, optional bias epilogue, strided batches.
// The algorithm cuBLASLt's heuristic picks is cached per (shape, formats, scaling, layout).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include <cublasLt.h>
#include <cuda_bf16.h>

#include "numerics/quantized_tensor.h"

namespace octet::cuda {

enum class GemmScaling { bf16, per_tensor, outer_vector, blockwise };

struct GemmArgs {
    const void* a;             // [m, k]: FP8 codes or BF16
    const void* b;             // [n, k]
    Format a_format, b_format; // e4m3 / e5m2 (FP8 scalings) or bf16
    const float* a_scale_inv;  // device; per_tensor: 1 value; outer_vector: [m]; else [k/128][m]
    const float* b_scale_inv; // device; per_tensor: 1; outer_vector: [n]; blockwise: [n/128][k/128]
    GemmScaling scaling;
    void* out; // [m, n]: BF16, or FP32 with out_fp32
    int64_t m, n, k;
    bool fast_accum;       // per-tensor only: no split accumulation (TE uses it for fprop)
    bool out_fp32 = false; // FP32 output, out = a · bᵀ + beta · out
    float beta = 0.0f;
};

// Row-major c[M, N] = op(a) · op(b) + beta · c, op(a) [M, K], op(b) [K, N]; a stored [M, K]
// ([K, M] when trans_a), b stored [K, N] ([N, K] when trans_b). Operands FP32 (strict FP32
// arithmetic, no TF32) or BF16 (FP32 accumulation); output FP32, or BF16 (rounded from the FP32
// result) from BF16 operands with beta 0. `batch` matrices at the given element strides; bias [N]
// (added to every row; FP32, or BF16 with a BF16 output: cuBLASLt 13.1 has no algorithm for an
// FP32 bias there) only with batch 1. The beta term reads c itself, or c_in where given (an FP32
// output written out of place: a residual stream's next value).
struct DenseGemmArgs {
    const void* a;
    const void* b;
    bool bf16; // both operands BF16, else both FP32
    bool trans_a, trans_b;
    void* c;          // FP32, or BF16 with c_bf16
    const void* bias; // the output's type
    float beta;
    int64_t m, n, k;
    int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
    // A device scalar multiplying op(a) · op(b) in the epilogue, or nullptr for 1; with it, beta
    // must be 0 or 1.
    const float* alpha = nullptr;
    bool c_bf16 = false;
    const float* c_in = nullptr;
};

class CublasLtGemm {
  public:
    CublasLtGemm();
    ~CublasLtGemm();
    CublasLtGemm(const CublasLtGemm&) = delete;
    CublasLtGemm& operator=(const CublasLtGemm&) = delete;
    // Throws Error naming the problem (unsupported shape or format, no algorithm).
    void run(const GemmArgs& args, cudaStream_t stream);
    void run(const DenseGemmArgs& args, cudaStream_t stream);

  private:
    using Key = std::array<int64_t, 9>;
    struct Descriptors;
    const cublasLtMatmulAlgo_t& algorithm(const Key& key, const Descriptors& d, const char* what);
    cublasLtHandle_t handle_ = nullptr;
    void* workspace_ = nullptr;
    float* device_scalars_ = nullptr; // 0 and 1: beta where alpha is a device pointer
    size_t workspace_bytes_ = size_t(32) << 20;
    std::map<Key, cublasLtMatmulAlgo_t> algos_;
};

// The scale_inv of a single-level QuantizedTensor in the layout cuBLASLt's block-scaled GEMM
// expects (host vector): 1×128 groups → [k/128][rows]; 128×128 blocks → [rows/128][k/128].
std::vector<float> blockwise_scale_layout(const QuantizedTensor& q);

} // namespace octet::cuda
