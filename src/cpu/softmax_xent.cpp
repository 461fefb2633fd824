// Softmax fused with cross-entropy over the vocabulary (log-sum-exp in float64).
#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "cpu/kernels.h"

namespace octet::cpu {

template <typename T>
void softmax_xent(T* losses, T* d_logits, const T* logits, const int32_t* targets, T d_loss,
                  int64_t n, int64_t v) {
    for (int64_t i = 0; i < n; ++i)
        if (targets[i] < 0 || targets[i] >= v)
            throw Error("cross-entropy: target " + std::to_string(targets[i]) + " at position " +
                        std::to_string(i) + " is outside the vocabulary of " + std::to_string(v));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const T* z = logits + i * v;
        double max = -INFINITY;
        for (int64_t j = 0; j < v; ++j) max = std::max(max, double(z[j]));
        double sum = 0;
        for (int64_t j = 0; j < v; ++j) sum += std::exp(double(z[j]) - max);
        // Before d_logits may overwrite z.
        losses[i] = T(std::log(sum) + max - double(z[targets[i]]));
        // The probability rounded to T, then the gradient in T, as the GPU computes it.
        for (int64_t j = 0; j < v; ++j) {
            const T p = T(std::exp(double(z[j]) - max) / sum);
            d_logits[i * v + j] = (p - (j == targets[i] ? T(1) : T(0))) * d_loss;
        }
    }
}

#define OCTET_INSTANTIATE(T)                                                                       \
    template void softmax_xent<T>(T*, T*, const T*, const int32_t*, T, int64_t, int64_t);
OCTET_INSTANTIATE(float)
OCTET_INSTANTIATE(double)

} // namespace octet::cpu
