// The pass after a GEMM (see gemm_output.h).
#include <cuda_bf16.h>

#include "cuda/gemm_output.h"
#include "cuda/launch.cuh"

namespace octet::cuda {

void finish_gemm_output(const GemmOutputPass& p, cudaStream_t stream) {
    const int64_t count = p.rows * p.cols, cols = p.cols;
    const float *sources = p.sources, *bias = p.bias, *c = p.beta != 0.0f ? p.c : nullptr;
    const int splits = p.splits;
    const float beta = p.beta;
    void* out = p.out;
    const bool bf16 = p.bf16;
    for_each(count, stream, [=] __device__(int64_t i) {
        float sum = splits > 0 ? sources[i] : 0.0f; // a lone source keeps its −0
        for (int s = 1; s < splits; ++s) sum += sources[s * count + i];
        if (bias) sum += bias[i % cols];
        if (c) sum += beta * c[i];
        if (bf16)
            static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(sum);
        else
            static_cast<float*>(out)[i] = sum;
    });
}

} // namespace octet::cuda
