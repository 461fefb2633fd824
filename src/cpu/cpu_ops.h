// The CPU backend of the ops interface: the numerical oracle for every CUDA kernel, and the
// engine behind training on machines without a GPU.
#pragma once

#include "ops/ops.h"

namespace octet {

template <typename T>
class CpuOps final : public Ops<T> {
  public:
    CpuOps() = default;
    // Allocations through `memory`, a host-accessible one (tests count what a model holds).
    explicit CpuOps(Memory& memory) : memory_(&memory) {}
    Memory& memory() override { return *memory_; }
    // A BF16 layer's outputs for elementwise ops are its rounded values, in place.
    bool packs_bf16(const LinearPrecision*) override { return false; }
    void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, int64_t batch,
                           int64_t seq, int64_t c) override;
    void embedding_backward(T* d_wte, T* d_wpe, const T* d_out, const int32_t* tokens,
                            int64_t batch, int64_t seq, int64_t c) override;
    // The CPU keeps no operands of its own: `consumer` and `producer` are ignored and `out` (or
    // the gradient) always written.
    void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t n,
                           int64_t c, double eps, const LinearPrecision* consumer) override;
    void layernorm_backward(T* d_x, T* d_w, T* d_b, const T* d_out, const T* x, const T* w,
                            const T* mean, const T* rstd, int64_t n, int64_t c,
                            const LinearPrecision* reader,
                            const LinearPrecision* consumer) override;
    void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t c, double eps,
                         const LinearPrecision* consumer) override;
    void rmsnorm_backward(T* d_x, T* d_w, const T* d_out, const T* x, const T* w, const T* rstd,
                          int64_t n, int64_t c, const LinearPrecision* reader,
                          const LinearPrecision* consumer) override;
    void linear_forward(const LinearForwardArgs<T>& a) override;
    void linear_backward(const LinearBackwardArgs<T>& a) override;
    int64_t attention_state_size(const AttentionShape& a) override {
        return a.batch * a.heads * a.seq * a.seq;
    }
    bool attention_keeps_input(const AttentionShape&) override { return false; }
    void attention_forward(T* out, T* att, const T* qkv, const AttentionShape& a,
                           const LinearPrecision* consumer) override;
    void attention_backward(T* d_qkv, const T* d_out, const T* qkv, const T* att,
                            const AttentionShape& a, const LinearPrecision* consumer) override;
    void rope_forward(T* out, const T* qkv, const AttentionShape& a, double base) override;
    void rope_backward(T* d_qkv, const T* d_out, const AttentionShape& a, double base,
                       const LinearPrecision* consumer) override;
    void gelu_forward(T* out, const T* x, int64_t n, const LinearPrecision* producer,
                      const LinearPrecision* consumer) override;
    void gelu_backward(T* d_x, const T* d_out, const T* x, int64_t n,
                       const LinearPrecision* producer, const LinearPrecision* consumer) override;
    void swiglu_forward(T* out, const T* x, int64_t n, int64_t h, const LinearPrecision* producer,
                        const LinearPrecision* consumer) override;
    void swiglu_backward(T* d_x, const T* d_out, const T* x, int64_t n, int64_t h,
                         const LinearPrecision* producer, const LinearPrecision* consumer) override;
    void softmax_xent(T* losses, T* d_logits, const T* logits, const int32_t* targets, T d_loss,
                      int64_t n, int64_t v, const LinearPrecision* head) override;
    void scale(T* x, double s, int64_t n) override;
    void adamw_step(float* w, const float* g, MomentStorage m, MomentStorage v,
                    const std::vector<TensorSpan>& spans, const AdamWHyper* h, double max_norm,
                    double* norm) override;
    void adamw_step_scaled(float* w, float* g, const ScaledAdamWState& s,
                           const std::vector<TensorSpan>& spans, const AdamWHyper* h,
                           double max_norm, double* norm) override;
    void advance_weight_bounds(double* bounds, int64_t count, const AdamWHyper* h) override;
    void store_scaled(const ScaledTensors& dst, const float* x,
                      const std::vector<TensorSpan>& spans) override;
    void load_scaled(float* x, const ScaledTensors& src,
                     const std::vector<TensorSpan>& spans) override;

  private:
    Memory* memory_ = &host_memory();
};

extern template class CpuOps<float>;
extern template class CpuOps<double>;

} // namespace octet
