// Elementwise ops on the GPU: GELU (tanh approximation), SwiGLU, scaling and the BF16 rounding
// of GEMM operands. FP32 arithmetic on FP32 or BF16 values in memory.
#include "cuda/activation.cuh"
#include "cuda/bf16.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace octet::cuda {
namespace {

struct Identity {
    __device__ float operator()(float v) const { return v; }
};

// out[i] = f(x[i]), each in FP32 or BF16 (computed in FP32): four values per access where the
// pointers allow it.
template <typename Out, typename In, typename F>
void map_elements(Out* out, const In* x, int64_t n, cudaStream_t stream, F f) {
    for_each_quad(
        n, aligned_to(out, 4 * sizeof(Out)) && aligned_to(x, 4 * sizeof(In)), stream,
        [=] __device__(int64_t q) {
            const float4 v = load_quad(x, q);
            store_quad(out, q, make_float4(f(v.x), f(v.y), f(v.z), f(v.w)));
        },
        [=] __device__(int64_t i) { store_as(out + i, f(load_as(x + i))); });
}

// out[i] = f(a[i], b[i]), as map_elements.
template <typename Out, typename A, typename B, typename F>
void map_element_pairs(Out* out, const A* a, const B* b, int64_t n, cudaStream_t stream, F f) {
    for_each_quad(
        n,
        aligned_to(out, 4 * sizeof(Out)) && aligned_to(a, 4 * sizeof(A)) &&
            aligned_to(b, 4 * sizeof(B)),
        stream,
        [=] __device__(int64_t q) {
            const float4 u = load_quad(a, q), v = load_quad(b, q);
            store_quad(out, q, make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w)));
        },
        [=] __device__(int64_t i) { store_as(out + i, f(load_as(a + i), load_as(b + i))); });
}

} // namespace

template <typename Out, typename In>
void gelu_forward(Out* out, const In* x, int64_t n, cudaStream_t stream) {
    map_elements(out, x, n, stream, Gelu{});
}

template <typename DX, typename DOut, typename X>
void gelu_backward(DX* d_x, const DOut* d_out, const X* x, int64_t n, cudaStream_t stream) {
    map_element_pairs(d_x, x, d_out, n, stream, GeluGrad{});
}

template <typename Out, typename In>
void swiglu_forward(Out* out, const In* x, int64_t n, int64_t h, cudaStream_t stream) {
    for_each(n * h, stream, [=] __device__(int64_t i) {
        const int64_t row = i / h, j = i % h;
        const float g = load_as(x + row * 2 * h + j), u = load_as(x + row * 2 * h + h + j);
        store_as(out + i, swiglu(g, u));
    });
}

template <typename DX, typename DOut, typename X>
void swiglu_backward(DX* d_x, const DOut* d_out, const X* x, int64_t n, int64_t h,
                     cudaStream_t stream) {
    for_each(n * h, stream, [=] __device__(int64_t i) {
        const int64_t row = i / h, j = i % h;
        const float g = load_as(x + row * 2 * h + j), u = load_as(x + row * 2 * h + h + j);
        const float d = load_as(d_out + i);
        store_as(d_x + row * 2 * h + j, swiglu_grad_gate(g, u, d));
        store_as(d_x + row * 2 * h + h + j, swiglu_grad_up(g, d));
    });
}

// Every combination of FP32 and BF16 the ops use (cuda_ops.cu picks them at run time).
#define OCTET_ACTIVATION_FORWARD(Out, In)                                                          \
    template void gelu_forward<Out, In>(Out*, const In*, int64_t, cudaStream_t);                   \
    template void swiglu_forward<Out, In>(Out*, const In*, int64_t, int64_t, cudaStream_t);
#define OCTET_ACTIVATION_BACKWARD(DX, DOut, X)                                                     \
    template void gelu_backward<DX, DOut, X>(DX*, const DOut*, const X*, int64_t, cudaStream_t);   \
    template void swiglu_backward<DX, DOut, X>(DX*, const DOut*, const X*, int64_t, int64_t,       \
                                               cudaStream_t);
#define OCTET_ACTIVATION_BACKWARDS(DX, DOut)                                                       \
    OCTET_ACTIVATION_BACKWARD(DX, DOut, float)                                                     \
    OCTET_ACTIVATION_BACKWARD(DX, DOut, __nv_bfloat16)
OCTET_ACTIVATION_FORWARD(float, float)
OCTET_ACTIVATION_FORWARD(float, __nv_bfloat16)
OCTET_ACTIVATION_FORWARD(__nv_bfloat16, float)
OCTET_ACTIVATION_FORWARD(__nv_bfloat16, __nv_bfloat16)
OCTET_ACTIVATION_BACKWARDS(float, float)
OCTET_ACTIVATION_BACKWARDS(float, __nv_bfloat16)
OCTET_ACTIVATION_BACKWARDS(__nv_bfloat16, float)
OCTET_ACTIVATION_BACKWARDS(__nv_bfloat16, __nv_bfloat16)

void scale(float* x, double s, int64_t n, cudaStream_t stream) {
    for_each(n, stream, [=] __device__(int64_t i) { x[i] = float(double(x[i]) * s); });
}

// The BF16 casts move four elements per access: 16 bytes of FP32, 8 of BF16.

void to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream) {
    map_elements(out, in, n, stream, Identity{});
}

void from_bf16(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream) {
    map_elements(out, in, n, stream, Identity{});
}

} // namespace octet::cuda
