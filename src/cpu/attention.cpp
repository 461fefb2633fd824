// Causal multi-head attention (softmax in float64 accumulators) and rotary position embeddings.
// qkv is [B, T, 3C] packed as q | k | v, each head a contiguous slice of HS channels.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/kernels.h"

namespace octet::cpu {

template <typename T>
void attention_forward(T* out, T* att, const T* qkv, const AttentionShape& a) {
    const int64_t c = a.heads * a.head_size, c3 = 3 * c;
    const double scale = 1.0 / std::sqrt(double(a.head_size));
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < a.batch; ++b) {
        for (int64_t h = 0; h < a.heads; ++h) {
            std::vector<double> scores(size_t(a.seq));
            for (int64_t t = 0; t < a.seq; ++t) {
                const T* q = qkv + (b * a.seq + t) * c3 + h * a.head_size;
                T* p = att + ((b * a.heads + h) * a.seq + t) * a.seq;
                double max = -INFINITY;
                for (int64_t s = 0; s <= t; ++s) {
                    const T* k = qkv + (b * a.seq + s) * c3 + c + h * a.head_size;
                    double dot = 0;
                    for (int64_t i = 0; i < a.head_size; ++i) dot += double(q[i]) * double(k[i]);
                    scores[size_t(s)] = dot * scale;
                    max = std::max(max, scores[size_t(s)]);
                }
                double sum = 0;
                for (int64_t s = 0; s <= t; ++s)
                    sum += (scores[size_t(s)] = std::exp(scores[size_t(s)] - max));
                for (int64_t s = 0; s < a.seq; ++s)
                    p[s] = s <= t ? T(scores[size_t(s)] / sum) : T(0);
                T* o = out + (b * a.seq + t) * c + h * a.head_size;
                for (int64_t i = 0; i < a.head_size; ++i) {
                    double acc = 0;
                    for (int64_t s = 0; s <= t; ++s)
                        acc += double(p[s]) *
                               double(qkv[(b * a.seq + s) * c3 + 2 * c + h * a.head_size + i]);
                    o[i] = T(acc);
                }
            }
        }
    }
}

template <typename T>
void attention_backward(T* d_qkv, const T* d_out, const T* qkv, const T* att,
                        const AttentionShape& a) {
    const int64_t c = a.heads * a.head_size, c3 = 3 * c;
    const double scale = 1.0 / std::sqrt(double(a.head_size));
    // d_qkv is written: zeroed here, then summed over the positions that attend to each row.
    std::fill(d_qkv, d_qkv + a.batch * a.seq * c3, T(0));
    // Each (b, h) owns its slices of d_qkv: the parallel loop writes disjoint memory.
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < a.batch; ++b) {
        for (int64_t h = 0; h < a.heads; ++h) {
            std::vector<double> d_att(size_t(a.seq));
            for (int64_t t = 0; t < a.seq; ++t) {
                const T* p = att + ((b * a.heads + h) * a.seq + t) * a.seq;
                const T* g = d_out + (b * a.seq + t) * c + h * a.head_size;
                const T* q = qkv + (b * a.seq + t) * c3 + h * a.head_size;
                T* dq = d_qkv + (b * a.seq + t) * c3 + h * a.head_size;
                // d_att[s] = g · v_s;  dv_s += p[s] · g
                double dot_pd = 0;
                for (int64_t s = 0; s <= t; ++s) {
                    const T* v = qkv + (b * a.seq + s) * c3 + 2 * c + h * a.head_size;
                    T* dv = d_qkv + (b * a.seq + s) * c3 + 2 * c + h * a.head_size;
                    double dot = 0;
                    for (int64_t i = 0; i < a.head_size; ++i) {
                        dot += double(g[i]) * double(v[i]);
                        dv[i] += T(double(p[s]) * double(g[i]));
                    }
                    d_att[size_t(s)] = dot;
                    dot_pd += double(p[s]) * dot;
                }
                // softmax backward: d_score = p · (d_att − Σ p·d_att), then through q·k / √HS.
                for (int64_t s = 0; s <= t; ++s) {
                    const double ds = double(p[s]) * (d_att[size_t(s)] - dot_pd) * scale;
                    const T* k = qkv + (b * a.seq + s) * c3 + c + h * a.head_size;
                    T* dk = d_qkv + (b * a.seq + s) * c3 + c + h * a.head_size;
                    for (int64_t i = 0; i < a.head_size; ++i) {
                        dq[i] += T(ds * double(k[i]));
                        dk[i] += T(ds * double(q[i]));
                    }
                }
            }
        }
    }
}

// Rotate-half RoPE: channel i pairs with i + HS/2 at angle t · base^(−2i/HS).
template <typename T>
static void rotate(T* out, const T* in, int64_t t, int64_t head_size, double base, double sign) {
    const int64_t half = head_size / 2;
    for (int64_t i = 0; i < half; ++i) {
        const double theta = double(t) * std::pow(base, -2.0 * double(i) / double(head_size));
        const double cs = std::cos(theta), sn = sign * std::sin(theta);
        const double x0 = double(in[i]), x1 = double(in[i + half]);
        out[i] = T(x0 * cs - x1 * sn);
        out[i + half] = T(x0 * sn + x1 * cs);
    }
}

// out = in with q and k rotated by +θ (sign 1, the forward) or −θ (sign −1, its backward), and v
// copied.
template <typename T>
static void rotate_qk(T* out, const T* in, const AttentionShape& a, double base, double sign) {
    const int64_t c = a.heads * a.head_size, c3 = 3 * c;
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < a.batch * a.seq; ++bt) {
        const int64_t t = bt % a.seq;
        for (int64_t part = 0; part < 2; ++part) // q and k
            for (int64_t h = 0; h < a.heads; ++h) {
                const int64_t at = bt * c3 + part * c + h * a.head_size;
                rotate(out + at, in + at, t, a.head_size, base, sign);
            }
        for (int64_t i = 0; i < c; ++i) out[bt * c3 + 2 * c + i] = in[bt * c3 + 2 * c + i];
    }
}

template <typename T>
void rope_forward(T* out, const T* qkv, const AttentionShape& a, double base) {
    rotate_qk(out, qkv, a, base, 1.0);
}

template <typename T>
void rope_backward(T* d_qkv, const T* d_out, const AttentionShape& a, double base) {
    rotate_qk(d_qkv, d_out, a, base, -1.0);
}

#define OCTET_INSTANTIATE(T)                                                                       \
    template void attention_forward<T>(T*, T*, const T*, const AttentionShape&);                   \
    template void attention_backward<T>(T*, const T*, const T*, const T*, const AttentionShape&);  \
    template void rope_forward<T>(T*, const T*, const AttentionShape&, double);                    \
    template void rope_backward<T>(T*, const T*, const AttentionShape&, double);
OCTET_INSTANTIATE(float)
OCTET_INSTANTIATE(double)

} // namespace octet::cpu
