// Token and position embeddings on the GPU (see kernels.h).
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {
namespace {

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte,
                                         const float* wpe, int64_t seq, int64_t c, int64_t total) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int64_t row = i / c, j = i % c;
    float e = wte[int64_t(tokens[row]) * c + j];
    if (wpe) e += wpe[(row % seq) * c + j];
    out[i] = e;
}

__global__ void token_embedding_backward_kernel(float* d_wte, const float* d_out,
                                                const int32_t* tokens, int64_t c, int64_t total) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= total) return;
    atomicAdd(d_wte + int64_t(tokens[i / c]) * c + i % c, d_out[i]);
}

} // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int64_t batch, int64_t seq, int64_t c, cudaStream_t stream) {
    const int64_t total = batch * seq * c;
    embedding_forward_kernel<<<blocks_for(total, elementwise_threads), elementwise_threads, 0,
                               stream>>>(out, tokens, wte, wpe, seq, c, total);
    OCTET_CUDA_LAUNCHED();
}

void embedding_backward(float* d_wte, float* d_wpe, const float* d_out, const int32_t* tokens,
                        int64_t batch, int64_t seq, int64_t c, float* scratch,
                        cudaStream_t stream) {
    const int64_t total = batch * seq * c;
    token_embedding_backward_kernel<<<blocks_for(total, elementwise_threads), elementwise_threads,
                                      0, stream>>>(d_wte, d_out, tokens, c, total);
    OCTET_CUDA_LAUNCHED();
    if (!d_wpe) return;
    // d_wpe[t, j] += Σ_b d_out[b, t, j]: a column sum over the batch of the [B, T·C] matrix.
    column_sum(d_wpe, batch, seq * c, scratch, stream,
               [=] __device__(int64_t b, int64_t col) { return d_out[b * seq * c + col]; });
    OCTET_CUDA_LAUNCHED();
}

} // namespace octet::cuda
