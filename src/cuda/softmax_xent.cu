// Softmax cross-entropy over the vocabulary on the GPU, fused with its gradient: a block per row,
// an online max-and-sum pass over the logits, then a pass that writes d_logits and the loss
// (log-sum-exp in FP32). The first pass keeps the row in shared memory where it fits (GPT-2's
// 50,304 logits are 197 KB), so the logits are read from memory once instead of twice: the op
// moves 8 bytes per logit, the floor for FP32 logits in and gradients out (6 where the gradients
// are the BF16 dy of the LM head's backward). In place allowed with FP32 gradients.
#include <cfloat>

#include "cuda/bf16.cuh"
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {
namespace {

constexpr int xent_threads = 1024;

// Running (max, sum of exp(z − max)).
struct MaxSum {
    float max, sum;
};

__device__ MaxSum merge(MaxSum a, MaxSum b) {
    const float m = fmaxf(a.max, b.max);
    if (m == -INFINITY) return {m, 0.0f};
    return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

// One logit into a running pair: one exp, rescaling the sum only when the max grows. A NaN
// logit takes the second branch and makes the sum NaN, so the loss shows it.
__device__ void add(MaxSum& a, float z) {
    if (z == -INFINITY) return;
    if (z <= a.max) {
        a.sum += expf(z - a.max);
    } else {
        a.sum = a.sum * expf(a.max - z) + 1.0f;
        a.max = z;
    }
}

// `width` logits per access: 4 (16-byte rows) or 1.
template <int width>
struct Logits {
    float v[width];
};

template <int width>
__device__ Logits<width> load(const float* p) {
    Logits<width> x;
    if constexpr (width == 4) {
        const float4 q = *reinterpret_cast<const float4*>(p);
        x.v[0] = q.x, x.v[1] = q.y, x.v[2] = q.z, x.v[3] = q.w;
    } else {
        x.v[0] = *p;
    }
    return x;
}

template <int width, typename Out>
__device__ void store(Out* p, const Logits<width>& x) {
    if constexpr (width == 4)
        store_quad(p, 0, make_float4(x.v[0], x.v[1], x.v[2], x.v[3]));
    else
        store_as(p, x.v[0]);
}

// cached: the row goes through shared memory (v floats of dynamic shared memory).
template <int width, bool cached, typename Out>
__global__ void __launch_bounds__(xent_threads)
    softmax_xent_kernel(float* losses, Out* d_logits, const float* logits, const int32_t* targets,
                        float d_loss, int64_t v) {
    extern __shared__ float4 row_cache[];
    float* cache = reinterpret_cast<float*>(row_cache);
    const int64_t row = blockIdx.x;
    const float* z = logits + row * v;
    const int32_t target = targets[row];
    const float target_logit = z[target]; // read before d_logits may overwrite the logits
    MaxSum ms{-INFINITY, 0.0f};
    for (int64_t j = int64_t(threadIdx.x) * width; j < v; j += int64_t(blockDim.x) * width) {
        const Logits<width> x = load<width>(z + j);
        if constexpr (cached) store<width>(cache + j, x);
        for (int e = 0; e < width; ++e) add(ms, x.v[e]);
    }
    ms = block_reduce(ms, MaxSum{-INFINITY, 0.0f}, [](MaxSum m) {
        for (int offset = 16; offset > 0; offset /= 2)
            m = merge(m, {__shfl_xor_sync(0xFFFFFFFFu, m.max, offset),
                          __shfl_xor_sync(0xFFFFFFFFu, m.sum, offset)});
        return m;
    });
    const float inv = 1.0f / ms.sum;
    const float* src = cached ? cache : z;
    for (int64_t j = int64_t(threadIdx.x) * width; j < v; j += int64_t(blockDim.x) * width) {
        Logits<width> x = load<width>(src + j);
        for (int e = 0; e < width; ++e) {
            const float p = expf(x.v[e] - ms.max) * inv;
            x.v[e] = (p - (j + e == target ? 1.0f : 0.0f)) * d_loss;
        }
        store<width>(d_logits + row * v + j, x);
    }
    if (threadIdx.x == 0) losses[row] = logf(ms.sum) + ms.max - target_logit;
}

// The largest row the shared-memory cache takes (the device's opt-in limit per block); kernels
// that use more than the default 48 KB are allowed to once.
template <int width, typename Out>
int64_t cacheable_logits() {
    static const int64_t limit = [] {
        int device = 0, bytes = 0;
        OCTET_CUDA_CHECK(cudaGetDevice(&device));
        OCTET_CUDA_CHECK(
            cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
        cudaFuncAttributes kernel{};
        OCTET_CUDA_CHECK(cudaFuncGetAttributes(&kernel, softmax_xent_kernel<width, true, Out>));
        const int dynamic = bytes - int(kernel.sharedSizeBytes); // block_reduce's own
        OCTET_CUDA_CHECK(cudaFuncSetAttribute(softmax_xent_kernel<width, true, Out>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              dynamic));
        return int64_t(dynamic) / int64_t(sizeof(float));
    }();
    return limit;
}

template <int width, typename Out>
void launch(float* losses, Out* d_logits, const float* logits, const int32_t* targets, float d_loss,
            int64_t n, int64_t v, cudaStream_t stream) {
    if (v <= cacheable_logits<width, Out>())
        softmax_xent_kernel<width, true>
            <<<unsigned(n), xent_threads, size_t(v) * sizeof(float), stream>>>(
                losses, d_logits, logits, targets, d_loss, v);
    else
        softmax_xent_kernel<width, false><<<unsigned(n), xent_threads, 0, stream>>>(
            losses, d_logits, logits, targets, d_loss, v);
    OCTET_CUDA_LAUNCHED();
}

template <typename Out>
void softmax_xent_as(float* losses, Out* d_logits, const float* logits, const int32_t* targets,
                     float d_loss, int64_t n, int64_t v, cudaStream_t stream) {
    if (n <= 0) return;
    if (v % 4 == 0 && aligned_to(logits, 16) && aligned_to(d_logits, 4 * sizeof(Out)))
        launch<4>(losses, d_logits, logits, targets, d_loss, n, v, stream);
    else
        launch<1>(losses, d_logits, logits, targets, d_loss, n, v, stream);
}

} // namespace

void softmax_xent(float* losses, float* d_logits, const float* logits, const int32_t* targets,
                  float d_loss, int64_t n, int64_t v, cudaStream_t stream) {
    softmax_xent_as(losses, d_logits, logits, targets, d_loss, n, v, stream);
}

void softmax_xent(float* losses, __nv_bfloat16* d_logits, const float* logits,
                  const int32_t* targets, float d_loss, int64_t n, int64_t v, cudaStream_t stream) {
    softmax_xent_as(losses, d_logits, logits, targets, d_loss, n, v, stream);
}

} // namespace octet::cuda
