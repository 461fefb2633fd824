// LayerNorm (GPT-2) and RMSNorm (Llama), statistics in float64.
#include <cmath>

#include "cpu/kernels.h"

namespace octet::cpu {

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t n,
                       int64_t c, double eps) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const T* xi = x + i * c;
        double m = 0, v = 0;
        for (int64_t j = 0; j < c; ++j) m += double(xi[j]);
        m /= double(c);
        for (int64_t j = 0; j < c; ++j) v += (double(xi[j]) - m) * (double(xi[j]) - m);
        const double s = 1.0 / std::sqrt(v / double(c) + eps);
        for (int64_t j = 0; j < c; ++j) out[i * c + j] = T((double(xi[j]) - m) * s) * w[j] + b[j];
        mean[i] = T(m);
        rstd[i] = T(s);
    }
}

template <typename T>
void layernorm_backward(T* d_x, T* d_w, T* d_b, const T* d_out, const T* x, const T* w,
                        const T* mean, const T* rstd, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const T* g = d_out + i * c;
        const T* xi = x + i * c;
        // dnorm = g·w; dx = rstd · (dnorm − mean(dnorm) − norm · mean(dnorm · norm))
        double mean_d = 0, mean_dn = 0;
        for (int64_t j = 0; j < c; ++j) {
            const double norm = (double(xi[j]) - double(mean[i])) * double(rstd[i]);
            const double dnorm = double(g[j]) * double(w[j]);
            mean_d += dnorm;
            mean_dn += dnorm * norm;
        }
        mean_d /= double(c);
        mean_dn /= double(c);
        for (int64_t j = 0; j < c; ++j) {
            const double norm = (double(xi[j]) - double(mean[i])) * double(rstd[i]);
            const double dnorm = double(g[j]) * double(w[j]);
            d_x[i * c + j] += T(double(rstd[i]) * (dnorm - mean_d - norm * mean_dn));
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < c; ++j) {
        double dw = 0, db = 0;
        for (int64_t i = 0; i < n; ++i) {
            const double norm = (double(x[i * c + j]) - double(mean[i])) * double(rstd[i]);
            dw += double(d_out[i * c + j]) * norm;
            db += double(d_out[i * c + j]);
        }
        d_w[j] += T(dw);
        d_b[j] += T(db);
    }
}

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t c, double eps) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const T* xi = x + i * c;
        double ss = 0;
        for (int64_t j = 0; j < c; ++j) ss += double(xi[j]) * double(xi[j]);
        const double s = 1.0 / std::sqrt(ss / double(c) + eps);
        for (int64_t j = 0; j < c; ++j) out[i * c + j] = T(double(xi[j]) * s) * w[j];
        rstd[i] = T(s);
    }
}

template <typename T>
void rmsnorm_backward(T* d_x, T* d_w, const T* d_out, const T* x, const T* w, const T* rstd,
                      int64_t n, int64_t c) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const T* g = d_out + i * c;
        const T* xi = x + i * c;
        // dx = rstd · (dnorm − norm · mean(dnorm · norm)), norm = x · rstd
        double mean_dn = 0;
        for (int64_t j = 0; j < c; ++j)
            mean_dn += double(g[j]) * double(w[j]) * double(xi[j]) * double(rstd[i]);
        mean_dn /= double(c);
        for (int64_t j = 0; j < c; ++j) {
            const double norm = double(xi[j]) * double(rstd[i]);
            d_x[i * c + j] += T(double(rstd[i]) * (double(g[j]) * double(w[j]) - norm * mean_dn));
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < c; ++j) {
        double dw = 0;
        for (int64_t i = 0; i < n; ++i)
            dw += double(d_out[i * c + j]) * double(x[i * c + j]) * double(rstd[i]);
        d_w[j] += T(dw);
    }
}

#define OCTET_INSTANTIATE(T)                                                                       \
    template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, \
                                       double);                                                    \
    template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,        \
                                        const T*, int64_t, int64_t);                               \
    template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, double);        \
    template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t,     \
                                      int64_t);
OCTET_INSTANTIATE(float)
OCTET_INSTANTIATE(double)

} // namespace octet::cpu
