// Token and learned-position embeddings (GPT-2); Llama-style models pass wpe = nullptr.
#include "cpu/kernels.h"

namespace octet::cpu {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int64_t batch,
                       int64_t seq, int64_t c) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < batch * seq; ++i) {
        const T* e = wte + int64_t(tokens[i]) * c;
        const T* p = wpe ? wpe + (i % seq) * c : nullptr;
        T* o = out + i * c;
        for (int64_t j = 0; j < c; ++j) o[j] = e[j] + (p ? p[j] : T(0));
    }
}

template <typename T>
void embedding_backward(T* d_wte, T* d_wpe, const T* d_out, const int32_t* tokens, int64_t batch,
                        int64_t seq, int64_t c) {
    // Rows of wte are shared by repeated tokens: accumulate in token order (deterministic).
    for (int64_t i = 0; i < batch * seq; ++i) {
        T* e = d_wte + int64_t(tokens[i]) * c;
        T* p = d_wpe ? d_wpe + (i % seq) * c : nullptr;
        const T* g = d_out + i * c;
        for (int64_t j = 0; j < c; ++j) {
            e[j] += g[j];
            if (p) p[j] += g[j];
        }
    }
}

#define OCTET_INSTANTIATE(T)                                                                       \
    template void embedding_forward<T>(T*, const int32_t*, const T*, const T*, int64_t, int64_t,   \
                                       int64_t);                                                   \
    template void embedding_backward<T>(T*, T*, const T*, const int32_t*, int64_t, int64_t,        \
                                        int64_t);
OCTET_INSTANTIATE(float)
OCTET_INSTANTIATE(double)

} // namespace octet::cpu
