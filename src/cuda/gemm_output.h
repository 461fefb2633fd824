// The pass after a GEMM for what its epilogue did not do, shared by ScaledGemm's cuBLASLt and
// emulated paths and the microscaled GEMM's split K:
//   out[i] = Σ_{s < splits} sources[s · rows · cols + i] + bias[i % cols] + beta · c[i],
// summed in that order in FP32, then stored as FP32 or rounded to BF16. bias and c may be
// nullptr; out may be sources itself (splits = 1) or c.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

namespace octet::cuda {

struct GemmOutputPass {
    const float* sources;
    int splits;
    const float* bias;
    const float* c;
    float beta;
    void* out;
    bool bf16;
    int64_t rows, cols;
};

void finish_gemm_output(const GemmOutputPass& p, cudaStream_t stream);

} // namespace octet::cuda
