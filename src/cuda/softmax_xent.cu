// Softmax cross-entropy over the vocabulary on the GPU: one block per row, an online max-and-sum
// pass, then the probabilities and the loss (log-sum-exp in FP32). In place allowed.
#include <cfloat>

#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {
namespace {

constexpr int xent_threads = 512;

// Running (max, sum of exp(z − max)) merged across threads.
struct MaxSum {
    float max, sum;
};

__device__ MaxSum merge(MaxSum a, MaxSum b) {
    const float m = fmaxf(a.max, b.max);
    if (m == -INFINITY) return {m, 0.0f};
    return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

__global__ void softmax_xent_forward_kernel(float* losses, float* probs, const float* logits,
                                            const int32_t* targets, int64_t v) {
    const int64_t row = blockIdx.x;
    const float* z = logits + row * v;
    MaxSum ms{-INFINITY, 0.0f};
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) ms = merge(ms, {z[j], 1.0f});
    for (int offset = 16; offset > 0; offset /= 2)
        ms = merge(ms, {__shfl_xor_sync(0xFFFFFFFFu, ms.max, offset),
                        __shfl_xor_sync(0xFFFFFFFFu, ms.sum, offset)});
    __shared__ MaxSum warps[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warps[warp] = ms;
    const float target_logit = z[targets[row]]; // read before probs may overwrite the logits
    __syncthreads();
    ms = {-INFINITY, 0.0f};
    for (int i = 0; i < int(blockDim.x / 32); ++i) ms = merge(ms, warps[i]);
    const float inv = 1.0f / ms.sum;
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x)
        probs[row * v + j] = expf(z[j] - ms.max) * inv;
    if (threadIdx.x == 0) losses[row] = logf(ms.sum) + ms.max - target_logit;
}

} // namespace

void softmax_xent_forward(float* losses, float* probs, const float* logits, const int32_t* targets,
                          int64_t n, int64_t v, cudaStream_t stream) {
    softmax_xent_forward_kernel<<<unsigned(n), xent_threads, 0, stream>>>(losses, probs, logits,
                                                                          targets, v);
    OCTET_CUDA_LAUNCHED();
}

void softmax_xent_backward(float* d_logits, const float* probs, const int32_t* targets,
                           float d_loss, int64_t n, int64_t v, cudaStream_t stream) {
    for_each(n * v, stream, [=] __device__(int64_t i) {
        d_logits[i] = (probs[i] - (i % v == targets[i / v] ? 1.0f : 0.0f)) * d_loss;
    });
}

} // namespace octet::cuda
