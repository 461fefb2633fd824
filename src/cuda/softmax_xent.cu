// Softmax cross-entropy over the vocabulary on the GPU, fused with its gradient: a block per row,
// an online max-and-sum pass over the logits, then a pass that writes d_logits and the loss
// (log-sum-exp in FP32). The first pass keeps the row in shared memory where it fits (GPT-2's
// 50,304 logits are 197 KB in FP32, 98 KB in BF16), so the logits are read from memory once
// instead of twice: the op moves 8 bytes per logit, the floor for FP32 logits in and gradients
// out, and 4 where a BF16 LM head writes its logits and reads its BF16 dy back in their place.
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

// `width` logits per access: 16 bytes of them (4 FP32, 8 BF16) where rows allow it, else 1.
template <int width>
struct Logits {
    float v[width];
};

template <int width, typename In>
__device__ Logits<width> load(const In* p) {
    Logits<width> x;
    if constexpr (width == 1) {
        x.v[0] = load_as(p);
    } else if constexpr (width == 4) {
        const float4 q = load_quad(p, 0);
        x.v[0] = q.x, x.v[1] = q.y, x.v[2] = q.z, x.v[3] = q.w;
    } else {
        static_assert(width == 8 && sizeof(In) == 2);
        const uint4 bits = *reinterpret_cast<const uint4*>(p);
        const float4 lo = float_quad(make_uint2(bits.x, bits.y)),
                     hi = float_quad(make_uint2(bits.z, bits.w));
        x.v[0] = lo.x, x.v[1] = lo.y, x.v[2] = lo.z, x.v[3] = lo.w;
        x.v[4] = hi.x, x.v[5] = hi.y, x.v[6] = hi.z, x.v[7] = hi.w;
    }
    return x;
}

template <int width, typename Out>
__device__ void store(Out* p, const Logits<width>& x) {
    if constexpr (width == 1) {
        store_as(p, x.v[0]);
    } else {
        for (int q = 0; q < width / 4; ++q)
            store_quad(p, q,
                       make_float4(x.v[4 * q], x.v[4 * q + 1], x.v[4 * q + 2], x.v[4 * q + 3]));
    }
}

// cached: the row goes through shared memory (v values of In in dynamic shared memory).
template <int width, bool cached, typename Out, typename In>
__global__ void __launch_bounds__(xent_threads)
    softmax_xent_kernel(float* losses, Out* d_logits, const In* logits, const int32_t* targets,
                        float d_loss, int64_t v) {
    extern __shared__ float4 row_cache[];
    In* cache = reinterpret_cast<In*>(row_cache);
    const int64_t row = blockIdx.x;
    const In* z = logits + row * v;
    const int32_t target = targets[row];
    const float target_logit = load_as(z + target); // read before d_logits may overwrite it
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
    const In* src = cached ? cache : z;
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
template <int width, typename Out, typename In>
int64_t cacheable_logits() {
    static const int64_t limit = [] {
        int device = 0, bytes = 0;
        OCTET_CUDA_CHECK(cudaGetDevice(&device));
        OCTET_CUDA_CHECK(
            cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
        cudaFuncAttributes kernel{};
        OCTET_CUDA_CHECK(cudaFuncGetAttributes(&kernel, softmax_xent_kernel<width, true, Out, In>));
        const int dynamic = bytes - int(kernel.sharedSizeBytes); // block_reduce's own
        OCTET_CUDA_CHECK(cudaFuncSetAttribute(softmax_xent_kernel<width, true, Out, In>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              dynamic));
        return int64_t(dynamic) / int64_t(sizeof(In));
    }();
    return limit;
}

template <int width, typename Out, typename In>
void launch(float* losses, Out* d_logits, const In* logits, const int32_t* targets, float d_loss,
            int64_t n, int64_t v, cudaStream_t stream) {
    if (v <= cacheable_logits<width, Out, In>())
        softmax_xent_kernel<width, true>
            <<<unsigned(n), xent_threads, size_t(v) * sizeof(In), stream>>>(
                losses, d_logits, logits, targets, d_loss, v);
    else
        softmax_xent_kernel<width, false><<<unsigned(n), xent_threads, 0, stream>>>(
            losses, d_logits, logits, targets, d_loss, v);
    OCTET_CUDA_LAUNCHED();
}

} // namespace

template <typename Out, typename In>
void softmax_xent(float* losses, Out* d_logits, const In* logits, const int32_t* targets,
                  float d_loss, int64_t n, int64_t v, cudaStream_t stream) {
    if (n <= 0) return;
    constexpr int width = 16 / sizeof(In);
    if (v % width == 0 && aligned_to(logits, 16) && aligned_to(d_logits, width * sizeof(Out)))
        launch<width>(losses, d_logits, logits, targets, d_loss, n, v, stream);
    else
        launch<1>(losses, d_logits, logits, targets, d_loss, n, v, stream);
}

template void softmax_xent<float, float>(float*, float*, const float*, const int32_t*, float,
                                         int64_t, int64_t, cudaStream_t);
template void softmax_xent<__nv_bfloat16, float>(float*, __nv_bfloat16*, const float*,
                                                 const int32_t*, float, int64_t, int64_t,
                                                 cudaStream_t);
template void softmax_xent<float, __nv_bfloat16>(float*, float*, const __nv_bfloat16*,
                                                 const int32_t*, float, int64_t, int64_t,
                                                 cudaStream_t);
template void softmax_xent<__nv_bfloat16, __nv_bfloat16>(float*, __nv_bfloat16*,
                                                         const __nv_bfloat16*, const int32_t*,
                                                         float, int64_t, int64_t, cudaStream_t);

} // namespace octet::cuda
