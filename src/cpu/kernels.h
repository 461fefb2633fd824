// CPU reference kernels, one op family per .cpp file (embedding, normalization, linear,
// attention, activation, softmax_xent, optimizer). Templates over the scalar type, instantiated for
// float (training) and double (float64 gradient checks). Semantics are those of ops/ops.h: backward
// kernels write the gradients of activations (but the norms') and accumulate into parameters'.
// Row loops run under OpenMP with static schedules; reductions across rows run in a fixed order,
// so results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "numerics/quantized_tensor.h"
#include "ops/ops.h"

namespace octet::cpu {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int64_t batch,
                       int64_t seq, int64_t c);
template <typename T>
void embedding_backward(T* d_wte, T* d_wpe, const T* d_out, const int32_t* tokens, int64_t batch,
                        int64_t seq, int64_t c);

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t n,
                       int64_t c, double eps);
template <typename T>
void layernorm_backward(T* d_x, T* d_w, T* d_b, const T* d_out, const T* x, const T* w,
                        const T* mean, const T* rstd, int64_t n, int64_t c);
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t c, double eps);
template <typename T>
void rmsnorm_backward(T* d_x, T* d_w, const T* d_out, const T* x, const T* w, const T* rstd,
                      int64_t n, int64_t c);

// out[n, m] (+)= a[n, K] · b[m, K]ᵀ for FP8 operands with groups along K, promoted per K-block
// as a Hopper kernel does (the FP8 GEMM oracle; linear.cpp).
void scaled_gemm_nt(const QuantizedTensor& a, const QuantizedTensor& b, float* out,
                    bool accumulate);

template <typename T>
void linear_forward(const LinearForwardArgs<T>& a);
template <typename T>
void linear_backward(const LinearBackwardArgs<T>& a);

template <typename T>
void attention_forward(T* out, T* att, const T* qkv, const AttentionShape& a);
template <typename T>
void attention_backward(T* d_qkv, const T* d_out, const T* qkv, const T* att,
                        const AttentionShape& a);
template <typename T>
void rope_forward(T* out, const T* qkv, const AttentionShape& a, double base);
template <typename T>
void rope_backward(T* d_qkv, const T* d_out, const AttentionShape& a, double base);

template <typename T>
void gelu_forward(T* out, const T* x, int64_t n);
template <typename T>
void gelu_backward(T* d_x, const T* d_out, const T* x, int64_t n);
template <typename T>
void swiglu_forward(T* out, const T* x, int64_t n, int64_t h);
template <typename T>
void swiglu_backward(T* d_x, const T* d_out, const T* x, int64_t n, int64_t h);

template <typename T>
void softmax_xent(T* losses, T* d_logits, const T* logits, const int32_t* targets, T d_loss,
                  int64_t n, int64_t v);

template <typename T>
void scale(T* x, double s, int64_t n);
// Ops::adamw_step; the norm is summed in the buffer's order, so it is thread-count independent.
double adamw_step(float* w, const float* g, MomentStorage m, MomentStorage v,
                  const std::vector<TensorSpan>& spans, AdamWHyper h, double max_norm);
double adamw_step_scaled(float* w, float* g, const ScaledAdamWState& s,
                         const std::vector<TensorSpan>& spans, AdamWHyper h, double max_norm);
void store_scaled(const ScaledTensors& dst, const float* x, const std::vector<TensorSpan>& spans);
void load_scaled(float* x, const ScaledTensors& src, const std::vector<TensorSpan>& spans);

} // namespace octet::cpu
