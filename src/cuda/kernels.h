// CUDA kernels of the dense GPT, one op family per .cu file (embedding, normalization,
// activation, attention, softmax_xent, optimizer), FP32 in memory, launched on `stream`. The
// semantics are those of ops/ops.h and the CPU oracle (cpu/kernels.h): backward kernels write
// the gradients of activations (but the norms') and accumulate into parameters'. Every reduction
// runs in a fixed order, so a step's results are the same from run to run: column sums in two
// passes for the gradients of norms, biases and position embeddings, and a sort by token for the
// token embedding's.
#pragma once

#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/ops.h"

namespace octet::cuda {

// Floats of scratch a column sum over `rows` × `cols` needs (the position-embedding gradient takes
// a `scratch` of this size; biases take bias_backward_scratch's, norms norm_backward_scratch's).
int64_t column_sum_scratch(int64_t rows, int64_t cols);

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int64_t batch, int64_t seq, int64_t c, cudaStream_t stream);
// The token-embedding gradient sorts the positions by token: scratch for n = B·T tokens.
struct EmbeddingScratch {
    int32_t *positions, *sorted_tokens, *sorted_positions; // n each
    void* sort_temp;                                       // embedding_sort_bytes(n)
    size_t sort_bytes;
    float* column_sums; // column_sum_scratch(B, T·C), for d_wpe
};
size_t embedding_sort_bytes(int64_t n);
void embedding_backward(float* d_wte, float* d_wpe, const float* d_out, const int32_t* tokens,
                        int64_t batch, int64_t seq, int64_t c, const EmbeddingScratch& scratch,
                        cudaStream_t stream);

// LayerNorm and RMSNorm over at most 16384 channels (Error beyond); their backwards take a
// `scratch` of norm_backward_scratch(n, c) floats.
int64_t norm_backward_scratch(int64_t rows, int64_t cols);
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t n, int64_t c, double eps, cudaStream_t stream);
// The norms and activations with BF16 outputs: the FP32 results rounded to nearest, for a BF16
// linear layer that reads nothing else (ops.h's `consumer`).
void layernorm_forward(__nv_bfloat16* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t n, int64_t c, double eps, cudaStream_t stream);
// The backwards add to d_x and, where d_x_bf16 is not null, write the sum rounded to BF16 there
// too (the dy of the BF16 linear layer that reads the residual stream's gradient next).
// d_out (DOut) in FP32, or BF16 from a BF16 layer's dgrad (ops.h's `reader`).
template <typename DOut>
void layernorm_backward(float* d_x, __nv_bfloat16* d_x_bf16, float* d_w, float* d_b,
                        const DOut* d_out, const float* x, const float* w, const float* mean,
                        const float* rstd, int64_t n, int64_t c, float* scratch,
                        cudaStream_t stream);
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c,
                     double eps, cudaStream_t stream);
void rmsnorm_forward(__nv_bfloat16* out, float* rstd, const float* x, const float* w, int64_t n,
                     int64_t c, double eps, cudaStream_t stream);
template <typename DOut>
void rmsnorm_backward(float* d_x, __nv_bfloat16* d_x_bf16, float* d_w, const DOut* d_out,
                      const float* x, const float* w, const float* rstd, int64_t n, int64_t c,
                      float* scratch, cudaStream_t stream);

// d_bias[j] += Σ_i d_out[i, j] (bias gradients) from FP32 or BF16 dy; `scratch` holds
// bias_backward_scratch(n, m) floats.
int64_t bias_backward_scratch(int64_t n, int64_t m);
void bias_backward(float* d_bias, const float* d_out, int64_t n, int64_t m, float* scratch,
                   cudaStream_t stream);
void bias_backward(float* d_bias, const __nv_bfloat16* d_out, int64_t n, int64_t m, float* scratch,
                   cudaStream_t stream);
void to_bf16(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream);
void from_bf16(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream);

// The activations read and write FP32 or BF16 (Out, In, DX, DOut, X: float or __nv_bfloat16): a
// BF16 x or d_out is a BF16 layer's output for them (ops.h's `producer`), a BF16 out or d_x a BF16
// layer's operand or dy (`consumer`).
template <typename Out, typename In>
void gelu_forward(Out* out, const In* x, int64_t n, cudaStream_t stream);
template <typename DX, typename DOut, typename X>
void gelu_backward(DX* d_x, const DOut* d_out, const X* x, int64_t n, cudaStream_t stream);
template <typename Out, typename In>
void swiglu_forward(Out* out, const In* x, int64_t n, int64_t h, cudaStream_t stream);
template <typename DX, typename DOut, typename X>
void swiglu_backward(DX* d_x, const DOut* d_out, const X* x, int64_t n, int64_t h,
                     cudaStream_t stream);
void scale(float* x, double s, int64_t n, cudaStream_t stream);

// Attention's kernels around cuBLASLt's batched GEMMs (cuda_ops.cu runs those): packed qkv [B, T,
// 3, NH, HS] to per-head q, k, v [B, NH, T, HS] and back; the causal softmax and its backward on
// [B·NH·T, T].
void split_heads(float* q, float* k, float* v, const float* qkv, const AttentionShape& a,
                 cudaStream_t stream);
// d_qkv[…] = (dq | dk | dv) in the packed layout.
void merge_heads(float* d_qkv, const float* dq, const float* dk, const float* dv,
                 const AttentionShape& a, cudaStream_t stream);
// [B, NH, T, HS] → [B, T, NH·HS] (out = …), and the reverse for gradients.
void heads_to_tokens(float* out, const float* y, const AttentionShape& a, cudaStream_t stream);
void tokens_to_heads(float* y, const float* in, const AttentionShape& a, cudaStream_t stream);
// att = softmax(scale · scores) over s ≤ t, 0 above the diagonal (in place allowed).
void causal_softmax(float* att, const float* scores, int64_t rows, int64_t seq, float scale,
                    cudaStream_t stream);
// d_scores = att ⊙ (d_att − Σ att·d_att) · scale, 0 above the diagonal (in place allowed).
void causal_softmax_backward(float* d_scores, const float* d_att, const float* att, int64_t rows,
                             int64_t seq, float scale, cudaStream_t stream);
void rope_forward(float* out, const float* qkv, const AttentionShape& a, double base,
                  cudaStream_t stream);
void rope_backward(float* d_qkv, const float* d_out, const AttentionShape& a, double base,
                   cudaStream_t stream);
void rope_backward(__nv_bfloat16* d_qkv, const float* d_out, const AttentionShape& a, double base,
                   cudaStream_t stream);

// Logits in FP32, or BF16 from a BF16 LM head; d_logits in FP32, or BF16 (the head's dy). In
// place allowed where both have one type.
template <typename Out, typename In>
void softmax_xent(float* losses, Out* d_logits, const In* logits, const int32_t* targets,
                  float d_loss, int64_t n, int64_t v, cudaStream_t stream);

// The multi-tensor AdamW step: `chunks` (device) cut the spans into pieces of at most
// adamw_chunk elements, each launched as one block; h (device; its clip unused) and norm_out
// (device, 2 doubles: norm, clip).
struct AdamWChunk {
    int64_t begin, end;
    int32_t tensor; // the span's index
    int32_t decay;
};
constexpr int64_t adamw_chunk = 8192;
void adamw_step(float* w, const float* g, MomentStorage m, MomentStorage v,
                const AdamWChunk* chunks, int64_t num_chunks, int64_t total, const AdamWHyper* h,
                double max_norm, double* norm_out, double* partials, cudaStream_t stream);
constexpr int adamw_norm_blocks = 264; // partial sums of the gradient norm (fixed: deterministic)

// Ops::advance_weight_bounds: `bounds` and `h` on the device.
void advance_weight_bounds(double* bounds, int64_t count, const AdamWHyper* h, cudaStream_t stream);

// FP8-LM's scaled storage over `tensors` spans cut into chunks as above (Ops::adamw_step_scaled,
// store_scaled, load_scaled). Scratch: `amax` 3 · tensors floats, `partials` num_chunks doubles.
void adamw_step_scaled(float* w, float* g, const ScaledAdamWState& s, const AdamWChunk* chunks,
                       int64_t num_chunks, int64_t tensors, const AdamWHyper* h, double max_norm,
                       double* norm_out, double* partials, float* amax, cudaStream_t stream);
void store_scaled(const ScaledTensors& dst, const float* x, const AdamWChunk* chunks,
                  int64_t num_chunks, int64_t tensors, float* amax, cudaStream_t stream);
void load_scaled(float* x, const ScaledTensors& src, const AdamWChunk* chunks, int64_t num_chunks,
                 cudaStream_t stream);

} // namespace octet::cuda
