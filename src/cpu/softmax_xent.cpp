// Softmax fused with cross-entropy over the vocabulary (log-sum-exp in float64).
#include <cmath>

#include "common/error.h"
#include "cpu/kernels.h"

namespace octet::cpu {

template <typename T>
void softmax_xent_forward(T* losses, T* probs, const T* logits, const int32_t* targets, int64_t n,
                          int64_t v) {
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
        losses[i] = T(std::log(sum) + max - double(z[targets[i]])); // before probs may overwrite z
        for (int64_t j = 0; j < v; ++j) probs[i * v + j] = T(std::exp(double(z[j]) - max) / sum);
    }
}

template <typename T>
void softmax_xent_backward(T* d_logits, const T* probs, const int32_t* targets, T d_loss, int64_t n,
                           int64_t v) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < v; ++j)
            d_logits[i * v + j] = (probs[i * v + j] - (j == targets[i] ? T(1) : T(0))) * d_loss;
}

#define OCTET_INSTANTIATE(T)                                                                       \
    template void softmax_xent_forward<T>(T*, T*, const T*, const int32_t*, int64_t, int64_t);     \
    template void softmax_xent_backward<T>(T*, const T*, const int32_t*, T, int64_t, int64_t);
OCTET_INSTANTIATE(float)
OCTET_INSTANTIATE(double)

} // namespace octet::cpu
