// Attention's kernels around cuBLASLt's batched GEMMs (cuda_ops.cu runs the GEMMs): head
// (un)packing, the causal softmax and its backward (one warp per row, FP32), and rotary
// embeddings (angles in float64, as the CPU oracle).
#include "cuda/bf16.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {
namespace {

// Index pieces of element i of a [B, NH, T, HS] tensor.
struct HeadIndex {
    int64_t b, h, t, d;
};

__device__ HeadIndex head_index(int64_t i, const AttentionShape& a) {
    HeadIndex x;
    x.d = i % a.head_size;
    i /= a.head_size;
    x.t = i % a.seq;
    i /= a.seq;
    x.h = i % a.heads;
    x.b = i / a.heads;
    return x;
}

// Offset in the token-major [B, T, parts, NH, HS] layout (parts = 3 for packed qkv, 1 for y).
__device__ int64_t token_offset(const HeadIndex& x, const AttentionShape& a, int64_t parts,
                                int64_t part) {
    const int64_t c = a.heads * a.head_size;
    return (x.b * a.seq + x.t) * parts * c + part * c + x.h * a.head_size + x.d;
}

__global__ void causal_softmax_kernel(float* att, const float* scores, int64_t rows, int64_t seq,
                                      float scale) {
    const auto [row, lane] = row_warp();
    if (row >= rows) return;
    const int64_t t = row % seq;
    const float* s = scores + row * seq;
    float* p = att + row * seq;
    float max = -INFINITY;
    for (int64_t j = lane; j <= t; j += 32) max = fmaxf(max, s[j] * scale);
    max = warp_max(max);
    float sum = 0.0f;
    for (int64_t j = lane; j <= t; j += 32) sum += expf(s[j] * scale - max);
    const float inv = 1.0f / warp_sum(sum);
    for (int64_t j = lane; j < seq; j += 32) p[j] = j <= t ? expf(s[j] * scale - max) * inv : 0.0f;
}

__global__ void causal_softmax_backward_kernel(float* d_scores, const float* d_att,
                                               const float* att, int64_t rows, int64_t seq,
                                               float scale) {
    const auto [row, lane] = row_warp();
    if (row >= rows) return;
    const int64_t t = row % seq;
    const float* p = att + row * seq;
    const float* da = d_att + row * seq;
    float dot = 0.0f;
    for (int64_t j = lane; j <= t; j += 32) dot += p[j] * da[j];
    dot = warp_sum(dot);
    float* ds = d_scores + row * seq;
    for (int64_t j = lane; j < seq; j += 32) ds[j] = j <= t ? p[j] * (da[j] - dot) * scale : 0.0f;
}

// Rotate-half RoPE of the q and k parts of row bt (channel i pairs with i + HS/2).
template <typename Out>
__device__ void rotate_pair(Out* out, const float* in, int64_t i, const AttentionShape& a,
                            double base, double sign) {
    const int64_t half = a.head_size / 2, c = a.heads * a.head_size;
    const int64_t pair = i % half;
    int64_t rest = i / half;
    const int64_t h = rest % a.heads;
    rest /= a.heads;
    const int64_t part = rest % 2, bt = rest / 2, t = bt % a.seq;
    const double theta = double(t) * pow(base, -2.0 * double(pair) / double(a.head_size));
    double sn, cs;
    sincos(theta, &sn, &cs);
    sn *= sign;
    const int64_t at = bt * 3 * c + part * c + h * a.head_size + pair;
    const double x0 = in[at], x1 = in[at + half];
    store_as(out + at, float(x0 * cs - x1 * sn));
    store_as(out + at + half, float(x0 * sn + x1 * cs));
}

// out = in with q and k rotated by +θ (sign 1, the forward) or −θ (sign −1, its backward), and v
// copied (rounded where Out is BF16: the backward writing a BF16 layer's dy).
template <typename Out>
void rotate_qk(Out* out, const float* in, const AttentionShape& a, double base, double sign,
               cudaStream_t stream) {
    const int64_t c = a.heads * a.head_size;
    for_each(a.batch * a.seq * c, stream, [=] __device__(int64_t i) {
        const int64_t at = (i / c) * 3 * c + 2 * c + i % c;
        store_as(out + at, in[at]);
    });
    for_each(a.batch * a.seq * 2 * c / 2, stream,
             [=] __device__(int64_t i) { rotate_pair(out, in, i, a, base, sign); });
}

} // namespace

void split_heads(float* q, float* k, float* v, const float* qkv, const AttentionShape& a,
                 cudaStream_t stream) {
    for_each(a.batch * a.heads * a.seq * a.head_size, stream, [=] __device__(int64_t i) {
        const HeadIndex x = head_index(i, a);
        q[i] = qkv[token_offset(x, a, 3, 0)];
        k[i] = qkv[token_offset(x, a, 3, 1)];
        v[i] = qkv[token_offset(x, a, 3, 2)];
    });
}

void merge_heads(float* d_qkv, const float* dq, const float* dk, const float* dv,
                 const AttentionShape& a, cudaStream_t stream) {
    for_each(a.batch * a.heads * a.seq * a.head_size, stream, [=] __device__(int64_t i) {
        const HeadIndex x = head_index(i, a);
        d_qkv[token_offset(x, a, 3, 0)] = dq[i];
        d_qkv[token_offset(x, a, 3, 1)] = dk[i];
        d_qkv[token_offset(x, a, 3, 2)] = dv[i];
    });
}

void heads_to_tokens(float* out, const float* y, const AttentionShape& a, cudaStream_t stream) {
    for_each(a.batch * a.heads * a.seq * a.head_size, stream,
             [=] __device__(int64_t i) { out[token_offset(head_index(i, a), a, 1, 0)] = y[i]; });
}

void tokens_to_heads(float* y, const float* in, const AttentionShape& a, cudaStream_t stream) {
    for_each(a.batch * a.heads * a.seq * a.head_size, stream,
             [=] __device__(int64_t i) { y[i] = in[token_offset(head_index(i, a), a, 1, 0)]; });
}

void causal_softmax(float* att, const float* scores, int64_t rows, int64_t seq, float scale,
                    cudaStream_t stream) {
    causal_softmax_kernel<<<blocks_for(rows, rows_per_block), rows_per_block * 32, 0, stream>>>(
        att, scores, rows, seq, scale);
    OCTET_CUDA_LAUNCHED();
}

void causal_softmax_backward(float* d_scores, const float* d_att, const float* att, int64_t rows,
                             int64_t seq, float scale, cudaStream_t stream) {
    causal_softmax_backward_kernel<<<blocks_for(rows, rows_per_block), rows_per_block * 32, 0,
                                     stream>>>(d_scores, d_att, att, rows, seq, scale);
    OCTET_CUDA_LAUNCHED();
}

void rope_forward(float* out, const float* qkv, const AttentionShape& a, double base,
                  cudaStream_t stream) {
    rotate_qk(out, qkv, a, base, 1.0, stream);
}

void rope_backward(float* d_qkv, const float* d_out, const AttentionShape& a, double base,
                   cudaStream_t stream) {
    rotate_qk(d_qkv, d_out, a, base, -1.0, stream);
}

void rope_backward(__nv_bfloat16* d_qkv, const float* d_out, const AttentionShape& a, double base,
                   cudaStream_t stream) {
    rotate_qk(d_qkv, d_out, a, base, -1.0, stream);
}

} // namespace octet::cuda
