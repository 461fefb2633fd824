// The multi-tensor AdamW step on the GPU: three launches for all parameters — partial sums of the
// squared gradients (fixed grid, double accumulators), their total with the clipping factor, and
// the update, one block per chunk of one tensor. The norm never leaves the device before the
// update, so the step needs no host round trip.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {
namespace {

constexpr int norm_threads = 512;

__global__ void square_partials_kernel(double* partials, const float* g, int64_t total) {
    double acc = 0.0;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x)
        acc += double(g[i]) * double(g[i]);
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void norm_kernel(double* norm_out, const double* partials, int count, double max_norm) {
    double acc = 0.0;
    for (int i = int(threadIdx.x); i < count; i += int(blockDim.x)) acc += partials[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) {
        const double norm = sqrt(acc);
        norm_out[0] = norm;
        norm_out[1] = clip_factor(norm, max_norm);
    }
}

__global__ void adamw_kernel(float* w, const float* g, float* m, float* v, const AdamWChunk* chunks,
                             AdamWHyper h, const double* norm) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    h.clip = norm[1];
    for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x)
        adamw_update(w[i], g[i], m[i], v[i], h, chunk.decay != 0);
}

} // namespace

void adamw_step(float* w, const float* g, float* m, float* v, const AdamWChunk* chunks,
                int64_t num_chunks, int64_t total, AdamWHyper h, double max_norm, double* norm_out,
                double* partials, cudaStream_t stream) {
    square_partials_kernel<<<adamw_norm_blocks, norm_threads, 0, stream>>>(partials, g, total);
    OCTET_CUDA_LAUNCHED();
    norm_kernel<<<1, 1024, 0, stream>>>(norm_out, partials, adamw_norm_blocks, max_norm);
    OCTET_CUDA_LAUNCHED();
    if (num_chunks == 0) return;
    adamw_kernel<<<unsigned(num_chunks), elementwise_threads, 0, stream>>>(w, g, m, v, chunks, h,
                                                                           norm_out);
    OCTET_CUDA_LAUNCHED();
}

} // namespace octet::cuda
