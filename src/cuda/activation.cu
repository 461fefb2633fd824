// Elementwise ops on the GPU: GELU (tanh approximation), SwiGLU, scaling and the BF16 rounding
// of GEMM operands. FP32 arithmetic.
#include "cuda/bf16.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace octet::cuda {
namespace {

constexpr float gelu_k = 0.7978845608028654f; // sqrt(2/π)

struct Gelu {
    __device__ float operator()(float v) const {
        return 0.5f * v * (1.0f + tanhf(gelu_k * (v + 0.044715f * v * v * v)));
    }
};

struct Identity {
    __device__ float operator()(float v) const { return v; }
};

// out[i] = f(x[i]) in FP32, or rounded to BF16: four values per access where the pointers
// allow it (16 bytes of FP32 in, 16 or 8 bytes out).
template <typename Out, typename F>
void map_elements(Out* out, const float* x, int64_t n, cudaStream_t stream, F f) {
    for_each_quad(
        n, aligned_to(out, 4 * sizeof(Out)) && aligned_to(x, 16), stream,
        [=] __device__(int64_t q) {
            const float4 v = reinterpret_cast<const float4*>(x)[q];
            store_quad(out, q, make_float4(f(v.x), f(v.y), f(v.z), f(v.w)));
        },
        [=] __device__(int64_t i) { store_as(out + i, f(x[i])); });
}

// out[i] = f(a[i], b[i]), as map_elements.
template <typename Out, typename F>
void map_element_pairs(Out* out, const float* a, const float* b, int64_t n, cudaStream_t stream,
                       F f) {
    for_each_quad(
        n, aligned_to(out, 4 * sizeof(Out)) && aligned_to(a, 16) && aligned_to(b, 16), stream,
        [=] __device__(int64_t q) {
            const float4 u = reinterpret_cast<const float4*>(a)[q],
                         v = reinterpret_cast<const float4*>(b)[q];
            store_quad(out, q, make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w)));
        },
        [=] __device__(int64_t i) { store_as(out + i, f(a[i], b[i])); });
}

// d gelu(v) / dv · d
struct GeluGrad {
    __device__ float operator()(float v, float d) const {
        const float th = tanhf(gelu_k * (v + 0.044715f * v * v * v));
        const float du = gelu_k * (1.0f + 3.0f * 0.044715f * v * v);
        return (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du) * d;
    }
};

} // namespace

void gelu_forward(float* out, const float* x, int64_t n, cudaStream_t stream) {
    map_elements(out, x, n, stream, Gelu{});
}

void gelu_forward(__nv_bfloat16* out, const float* x, int64_t n, cudaStream_t stream) {
    map_elements(out, x, n, stream, Gelu{});
}

void gelu_backward(float* d_x, const float* d_out, const float* x, int64_t n, cudaStream_t stream) {
    map_element_pairs(d_x, x, d_out, n, stream, GeluGrad{});
}

void gelu_backward(__nv_bfloat16* d_x, const float* d_out, const float* x, int64_t n,
                   cudaStream_t stream) {
    map_element_pairs(d_x, x, d_out, n, stream, GeluGrad{});
}

namespace {

template <typename Out>
void swiglu_forward_as(Out* out, const float* x, int64_t n, int64_t h, cudaStream_t stream) {
    for_each(n * h, stream, [=] __device__(int64_t i) {
        const int64_t row = i / h, j = i % h;
        const float g = x[row * 2 * h + j], u = x[row * 2 * h + h + j];
        store_as(out + i, g / (1.0f + expf(-g)) * u);
    });
}

} // namespace

void swiglu_forward(float* out, const float* x, int64_t n, int64_t h, cudaStream_t stream) {
    swiglu_forward_as(out, x, n, h, stream);
}

void swiglu_forward(__nv_bfloat16* out, const float* x, int64_t n, int64_t h, cudaStream_t stream) {
    swiglu_forward_as(out, x, n, h, stream);
}

namespace {

template <typename Out>
void swiglu_backward_as(Out* d_x, const float* d_out, const float* x, int64_t n, int64_t h,
                        cudaStream_t stream) {
    for_each(n * h, stream, [=] __device__(int64_t i) {
        const int64_t row = i / h, j = i % h;
        const float g = x[row * 2 * h + j], u = x[row * 2 * h + h + j];
        const float sig = 1.0f / (1.0f + expf(-g)), d = d_out[i];
        store_as(d_x + row * 2 * h + j, d * u * sig * (1.0f + g * (1.0f - sig)));
        store_as(d_x + row * 2 * h + h + j, d * g * sig);
    });
}

} // namespace

void swiglu_backward(float* d_x, const float* d_out, const float* x, int64_t n, int64_t h,
                     cudaStream_t stream) {
    swiglu_backward_as(d_x, d_out, x, n, h, stream);
}

void swiglu_backward(__nv_bfloat16* d_x, const float* d_out, const float* x, int64_t n, int64_t h,
                     cudaStream_t stream) {
    swiglu_backward_as(d_x, d_out, x, n, h, stream);
}

void scale(float* x, double s, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) { x[i] = float(double(x[i]) * s); });
}

// The BF16 casts move four elements per access: 16 bytes of FP32, 8 of BF16.

void to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream) {
    map_elements(out, in, n, stream, Identity{});
}

void from_bf16(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream) {
    for_each_quad(
        n, aligned_to(in, 8) && aligned_to(out, 16), stream,
        [=] __device__(int64_t q) {
            reinterpret_cast<float4*>(out)[q] = float_quad(reinterpret_cast<const uint2*>(in)[q]);
        },
        [=] __device__(int64_t i) { out[i] = __bfloat162float(in[i]); });
}

} // namespace octet::cuda
