// Token and position embeddings on the GPU (see kernels.h). The token-embedding gradient is
// deterministic: positions are sorted by token (CUB's stable radix sort), and each token's rows
// are summed in position order by one block, as the CPU oracle sums them.
#include <cub/device/device_radix_sort.cuh>

#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {
namespace {

// Block i starts the run of equal tokens at sorted position i, if one starts there, and adds
// that run's rows of d_out, in position order, to the token's row of d_wte.
__global__ void token_embedding_backward_kernel(float* d_wte, const float* d_out,
                                                const int32_t* sorted_tokens,
                                                const int32_t* sorted_positions, int64_t n,
                                                int64_t c) {
    const int64_t start = blockIdx.x;
    const int32_t token = sorted_tokens[start];
    if (start > 0 && sorted_tokens[start - 1] == token) return;
    int64_t end = start + 1;
    while (end < n && sorted_tokens[end] == token) ++end;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
        float acc = d_wte[int64_t(token) * c + j];
        for (int64_t i = start; i < end; ++i) acc += d_out[int64_t(sorted_positions[i]) * c + j];
        d_wte[int64_t(token) * c + j] = acc;
    }
}

} // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int64_t batch, int64_t seq, int64_t c, cudaStream_t stream) {
    for_each(batch * seq * c, stream, [=] __device__(int64_t i) {
        const int64_t row = i / c, j = i % c;
        float e = wte[int64_t(tokens[row]) * c + j];
        if (wpe) e += wpe[(row % seq) * c + j];
        out[i] = e;
    });
}

size_t embedding_sort_bytes(int64_t n) {
    size_t bytes = 0;
    OCTET_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        nullptr, bytes, static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
        static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr), n));
    return bytes;
}

void embedding_backward(float* d_wte, float* d_wpe, const float* d_out, const int32_t* tokens,
                        int64_t batch, int64_t seq, int64_t c, const EmbeddingScratch& scratch,
                        cudaStream_t stream) {
    const int64_t n = batch * seq;
    int32_t* positions = scratch.positions;
    for_each(n, stream, [=] __device__(int64_t i) { positions[i] = int32_t(i); });
    size_t bytes = scratch.sort_bytes;
    OCTET_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        scratch.sort_temp, bytes, tokens, scratch.sorted_tokens, scratch.positions,
        scratch.sorted_positions, n, 0, 8 * int(sizeof(int32_t)), stream));
    token_embedding_backward_kernel<<<unsigned(n), elementwise_threads, 0, stream>>>(
        d_wte, d_out, scratch.sorted_tokens, scratch.sorted_positions, n, c);
    OCTET_CUDA_LAUNCHED();
    if (!d_wpe) return;
    // d_wpe[t, j] += Σ_b d_out[b, t, j]: a column sum over the batch of the [B, T·C] matrix.
    column_sum(d_wpe, batch, seq * c, scratch.column_sums, stream,
               [=] __device__(int64_t b, int64_t col) { return d_out[b * seq * c + col]; });
    OCTET_CUDA_LAUNCHED();
}

} // namespace octet::cuda
