// Elementwise ops: GELU (tanh approximation, GPT-2) and SwiGLU (Llama).
#include <cmath>

#include "cpu/kernels.h"

namespace octet::cpu {

constexpr double gelu_k = 0.7978845608028654; // sqrt(2/π)

template <typename T>
void gelu_forward(T* out, const T* x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const double v = double(x[i]);
        out[i] = T(0.5 * v * (1.0 + std::tanh(gelu_k * (v + 0.044715 * v * v * v))));
    }
}

template <typename T>
void gelu_backward(T* d_x, const T* d_out, const T* x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const double v = double(x[i]);
        const double u = gelu_k * (v + 0.044715 * v * v * v);
        const double th = std::tanh(u);
        const double du = gelu_k * (1.0 + 3.0 * 0.044715 * v * v);
        const double grad = 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du;
        d_x[i] = T(grad * double(d_out[i]));
    }
}

template <typename T>
void swiglu_forward(T* out, const T* x, int64_t n, int64_t h) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < h; ++j) {
            const double g = double(x[i * 2 * h + j]), u = double(x[i * 2 * h + h + j]);
            out[i * h + j] = T(g / (1.0 + std::exp(-g)) * u);
        }
    }
}

template <typename T>
void swiglu_backward(T* d_x, const T* d_out, const T* x, int64_t n, int64_t h) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < h; ++j) {
            const double g = double(x[i * 2 * h + j]), u = double(x[i * 2 * h + h + j]);
            const double sig = 1.0 / (1.0 + std::exp(-g));
            const double d = double(d_out[i * h + j]);
            d_x[i * 2 * h + j] = T(d * u * sig * (1.0 + g * (1.0 - sig)));
            d_x[i * 2 * h + h + j] = T(d * g * sig);
        }
    }
}

#define OCTET_INSTANTIATE(T)                                                                       \
    template void gelu_forward<T>(T*, const T*, int64_t);                                          \
    template void gelu_backward<T>(T*, const T*, const T*, int64_t);                               \
    template void swiglu_forward<T>(T*, const T*, int64_t, int64_t);                               \
    template void swiglu_backward<T>(T*, const T*, const T*, int64_t, int64_t);
OCTET_INSTANTIATE(float)
OCTET_INSTANTIATE(double)

} // namespace octet::cpu
