// CpuOps: the ops interface over the CPU kernels (cpu/kernels.h).
#include "cpu/cpu_ops.h"

#include "cpu/kernels.h"
#include "recipe/moss_weight_scaling.h"

namespace octet {

template <typename T>
void CpuOps<T>::embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe,
                                  int64_t batch, int64_t seq, int64_t c) {
    cpu::embedding_forward(out, tokens, wte, wpe, batch, seq, c);
}
template <typename T>
void CpuOps<T>::embedding_backward(T* d_wte, T* d_wpe, const T* d_out, const int32_t* tokens,
                                   int64_t batch, int64_t seq, int64_t c) {
    cpu::embedding_backward(d_wte, d_wpe, d_out, tokens, batch, seq, c);
}
template <typename T>
void CpuOps<T>::layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b,
                                  int64_t n, int64_t c, double eps, const LinearPrecision*) {
    cpu::layernorm_forward(out, mean, rstd, x, w, b, n, c, eps);
}
template <typename T>
void CpuOps<T>::layernorm_backward(T* d_x, T* d_w, T* d_b, const T* d_out, const T* x, const T* w,
                                   const T* mean, const T* rstd, int64_t n, int64_t c,
                                   const LinearPrecision*, const LinearPrecision*) {
    cpu::layernorm_backward(d_x, d_w, d_b, d_out, x, w, mean, rstd, n, c);
}
template <typename T>
void CpuOps<T>::rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t c,
                                double eps, const LinearPrecision*) {
    cpu::rmsnorm_forward(out, rstd, x, w, n, c, eps);
}
template <typename T>
void CpuOps<T>::rmsnorm_backward(T* d_x, T* d_w, const T* d_out, const T* x, const T* w,
                                 const T* rstd, int64_t n, int64_t c, const LinearPrecision*,
                                 const LinearPrecision*) {
    cpu::rmsnorm_backward(d_x, d_w, d_out, x, w, rstd, n, c);
}
template <typename T>
void CpuOps<T>::linear_forward(const LinearForwardArgs<T>& a) {
    cpu::linear_forward(a);
}
template <typename T>
void CpuOps<T>::linear_backward(const LinearBackwardArgs<T>& a) {
    cpu::linear_backward(a);
}
template <typename T>
void CpuOps<T>::attention_forward(T* out, T* att, const T* qkv, const AttentionShape& a,
                                  const LinearPrecision*) {
    cpu::attention_forward(out, att, qkv, a);
}
template <typename T>
void CpuOps<T>::attention_backward(T* d_qkv, const T* d_out, const T* qkv, const T* att,
                                   const AttentionShape& a, const LinearPrecision*) {
    cpu::attention_backward(d_qkv, d_out, qkv, att, a);
}
template <typename T>
void CpuOps<T>::rope_forward(T* out, const T* qkv, const AttentionShape& a, double base) {
    cpu::rope_forward(out, qkv, a, base);
}
template <typename T>
void CpuOps<T>::rope_backward(T* d_qkv, const T* d_out, const AttentionShape& a, double base,
                              const LinearPrecision*) {
    cpu::rope_backward(d_qkv, d_out, a, base);
}
template <typename T>
void CpuOps<T>::gelu_forward(T* out, const T* x, int64_t n, const LinearPrecision*,
                             const LinearPrecision*) {
    cpu::gelu_forward(out, x, n);
}
template <typename T>
void CpuOps<T>::gelu_backward(T* d_x, const T* d_out, const T* x, int64_t n, const LinearPrecision*,
                              const LinearPrecision*) {
    cpu::gelu_backward(d_x, d_out, x, n);
}
template <typename T>
void CpuOps<T>::swiglu_forward(T* out, const T* x, int64_t n, int64_t h, const LinearPrecision*,
                               const LinearPrecision*) {
    cpu::swiglu_forward(out, x, n, h);
}
template <typename T>
void CpuOps<T>::swiglu_backward(T* d_x, const T* d_out, const T* x, int64_t n, int64_t h,
                                const LinearPrecision*, const LinearPrecision*) {
    cpu::swiglu_backward(d_x, d_out, x, n, h);
}
template <typename T>
void CpuOps<T>::softmax_xent(T* losses, T* d_logits, const T* logits, const int32_t* targets,
                             T d_loss, int64_t n, int64_t v, const LinearPrecision*) {
    cpu::softmax_xent(losses, d_logits, logits, targets, d_loss, n, v);
}

template <typename T>
void CpuOps<T>::scale(T* x, double s, int64_t n) {
    cpu::scale(x, s, n);
}
template <typename T>
void CpuOps<T>::adamw_step(float* w, const float* g, MomentStorage m, MomentStorage v,
                           const std::vector<TensorSpan>& spans, const AdamWHyper* h,
                           double max_norm, double* norm) {
    norm[0] = cpu::adamw_step(w, g, m, v, spans, *h, max_norm);
    norm[1] = clip_factor(norm[0], max_norm);
}
template <typename T>
void CpuOps<T>::adamw_step_scaled(float* w, float* g, const ScaledAdamWState& s,
                                  const std::vector<TensorSpan>& spans, const AdamWHyper* h,
                                  double max_norm, double* norm) {
    norm[0] = cpu::adamw_step_scaled(w, g, s, spans, *h, max_norm);
    norm[1] = clip_factor(norm[0], max_norm);
}
template <typename T>
void CpuOps<T>::advance_weight_bounds(double* bounds, int64_t count, const AdamWHyper* h) {
    for (int64_t i = 0; i < count; ++i)
        bounds[i] = advance_weight_bound(bounds[i], h->decay, h->lr, h->max_update);
}
template <typename T>
void CpuOps<T>::store_scaled(const ScaledTensors& dst, const float* x,
                             const std::vector<TensorSpan>& spans) {
    cpu::store_scaled(dst, x, spans);
}
template <typename T>
void CpuOps<T>::load_scaled(float* x, const ScaledTensors& src,
                            const std::vector<TensorSpan>& spans) {
    cpu::load_scaled(x, src, spans);
}

template class CpuOps<float>;
template class CpuOps<double>;

} // namespace octet
