// Elementwise ops on the GPU: GELU (tanh approximation), SwiGLU, the residual add, scaling and
// the BF16 rounding of GEMM operands. FP32 arithmetic.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace octet::cuda {
namespace {

constexpr float gelu_k = 0.7978845608028654f; // sqrt(2/π)

} // namespace

void gelu_forward(float* out, const float* x, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) {
        const float v = x[i];
        out[i] = 0.5f * v * (1.0f + tanhf(gelu_k * (v + 0.044715f * v * v * v)));
    });
}

void gelu_backward(float* d_x, const float* d_out, const float* x, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) {
        const float v = x[i];
        const float th = tanhf(gelu_k * (v + 0.044715f * v * v * v));
        const float du = gelu_k * (1.0f + 3.0f * 0.044715f * v * v);
        d_x[i] += (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du) * d_out[i];
    });
}

void swiglu_forward(float* out, const float* x, int64_t n, int64_t h, cudaStream_t stream) {
    for_each(n * h, stream, [=] __device__(int64_t i) {
        const int64_t row = i / h, j = i % h;
        const float g = x[row * 2 * h + j], u = x[row * 2 * h + h + j];
        out[i] = g / (1.0f + expf(-g)) * u;
    });
}

void swiglu_backward(float* d_x, const float* d_out, const float* x, int64_t n, int64_t h,
                     cudaStream_t stream) {
    for_each(n * h, stream, [=] __device__(int64_t i) {
        const int64_t row = i / h, j = i % h;
        const float g = x[row * 2 * h + j], u = x[row * 2 * h + h + j];
        const float sig = 1.0f / (1.0f + expf(-g)), d = d_out[i];
        d_x[row * 2 * h + j] += d * u * sig * (1.0f + g * (1.0f - sig));
        d_x[row * 2 * h + h + j] += d * g * sig;
    });
}

void add_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) { out[i] = a[i] + b[i]; });
}

void scale(float* x, double s, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) { x[i] = float(double(x[i]) * s); });
}

void to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) { out[i] = __float2bfloat16_rn(in[i]); });
}

void from_bf16(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) { out[i] = __bfloat162float(in[i]); });
}

void accumulate_bf16(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) { out[i] += __bfloat162float(in[i]); });
}

} // namespace octet::cuda
