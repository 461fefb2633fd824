// The optimizer's ops on the CPU: scaling and the FP32 AdamW step (ops/adamw_update.h).
#include <cmath>

#include "cpu/kernels.h"

namespace octet::cpu {

template <typename T>
void scale(T* x, double s, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) x[i] = T(double(x[i]) * s);
}

double adamw_step(float* w, const float* g, float* m, float* v,
                  const std::vector<TensorSpan>& spans, AdamWHyper h, double max_norm) {
    double sq = 0;
    for (const TensorSpan& t : spans)
        for (int64_t i = t.offset; i < t.offset + t.numel; ++i) sq += double(g[i]) * double(g[i]);
    const double norm = std::sqrt(sq);
    h.clip = clip_factor(norm, max_norm);
    for (const TensorSpan& t : spans) {
#pragma omp parallel for schedule(static)
        for (int64_t i = t.offset; i < t.offset + t.numel; ++i)
            adamw_update(w[i], g[i], m[i], v[i], h, t.decay);
    }
    return norm;
}

template void scale(float*, double, int64_t);
template void scale(double*, double, int64_t);

} // namespace octet::cpu
