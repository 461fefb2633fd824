// The CUDA backend of the ops interface: every op of the dense GPT on the GPU, FP32 in memory,
// on one stream. GEMMs run in cuBLASLt: strict FP32 for `exact` linear layers and attention,
// BF16 operands with FP32 accumulation for `bf16` ones (whose GEMMs write BF16 outputs for flash
// attention and for elementwise ops, adding a BF16-rounded bias there, as autocast does: cuBLASLt
// 13.1 has no algorithm for an FP32 bias with a BF16 output), and FP8 recipes' operands
// quantized on the device by the recipe's own plans (quantize_plan.h), transposed for the
// backward (fp8_transpose.h) and multiplied by ScaledGemm (scaled_gemm.h): the CPU's FP8 linear
// layer, with the same codes and scales. Attention is cuDNN's flash attention in BF16 when the
// shape asks for BF16 (see flash_attention.h), else strict FP32 with the probabilities
// materialised.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cuda/device_memory.h"
#include "cuda/flash_attention.h"
#include "cuda/fp8_transpose.h"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "cuda/op_profiler.h"
#include "cuda/quantize.h"
#include "cuda/quantize_plan.h"
#include "cuda/scaled_gemm.h"
#include "ops/ops.h"

namespace octet::cuda {

// An owned CUDA stream.
class Stream {
  public:
    Stream();
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    cudaStream_t get() const { return stream_; }

  private:
    cudaStream_t stream_ = nullptr;
};

class CudaOps final : public Ops<float> {
  public:
    CudaOps();
    Memory& memory() override { return memory_; }
    // A CUDA graph of the ops (graph.h); not while the profiler times ops one by one.
    bool records() const override { return true; }
    std::unique_ptr<OpsGraph> record(const std::function<void()>& enqueue) override;
    // BF16 layers write BF16 for elementwise ops (ops.h's `producer`), packed two to a float.
    bool packs_bf16(const LinearPrecision* layer) override;
    cudaStream_t stream() const { return stream_.get(); }
    // Per-op GPU times (see op_profiler.h).
    OpProfiler& profiler() { return profiler_; }

    void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                           int64_t batch, int64_t seq, int64_t c) override;
    void embedding_backward(float* d_wte, float* d_wpe, const float* d_out, const int32_t* tokens,
                            int64_t batch, int64_t seq, int64_t c) override;
    void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                           const float* b, int64_t n, int64_t c, double eps,
                           const LinearPrecision* consumer) override;
    void layernorm_backward(float* d_x, float* d_w, float* d_b, const float* d_out, const float* x,
                            const float* w, const float* mean, const float* rstd, int64_t n,
                            int64_t c, const LinearPrecision* reader,
                            const LinearPrecision* consumer) override;
    void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n,
                         int64_t c, double eps, const LinearPrecision* consumer) override;
    void rmsnorm_backward(float* d_x, float* d_w, const float* d_out, const float* x,
                          const float* w, const float* rstd, int64_t n, int64_t c,
                          const LinearPrecision* reader, const LinearPrecision* consumer) override;
    void linear_forward(const LinearForwardArgs<float>& a) override;
    void linear_backward(const LinearBackwardArgs<float>& a) override;
    int64_t attention_state_size(const AttentionShape& a) override;
    bool attention_keeps_input(const AttentionShape& a) override;
    void attention_forward(float* out, float* state, const float* qkv, const AttentionShape& a,
                           const LinearPrecision* consumer) override;
    void attention_backward(float* d_qkv, const float* d_out, const float* qkv, const float* state,
                            const AttentionShape& a, const LinearPrecision* consumer) override;
    void rope_forward(float* out, const float* qkv, const AttentionShape& a, double base) override;
    void rope_backward(float* d_qkv, const float* d_out, const AttentionShape& a, double base,
                       const LinearPrecision* consumer) override;
    void gelu_forward(float* out, const float* x, int64_t n, const LinearPrecision* producer,
                      const LinearPrecision* consumer) override;
    void gelu_backward(float* d_x, const float* d_out, const float* x, int64_t n,
                       const LinearPrecision* producer, const LinearPrecision* consumer) override;
    void swiglu_forward(float* out, const float* x, int64_t n, int64_t h,
                        const LinearPrecision* producer, const LinearPrecision* consumer) override;
    void swiglu_backward(float* d_x, const float* d_out, const float* x, int64_t n, int64_t h,
                         const LinearPrecision* producer, const LinearPrecision* consumer) override;
    void softmax_xent(float* losses, float* d_logits, const float* logits, const int32_t* targets,
                      float d_loss, int64_t n, int64_t v, const LinearPrecision* head) override;
    void scale(float* x, double s, int64_t n) override;
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
    // What a BF16 or FP8 linear layer keeps from its forward for its backward, which then reads
    // no FP32 input (LinearPrecision::keeps_input()).
    // - BF16: x and W rounded.
    // - FP8: the quantized weight; the quantized input, or, where the recipe's layout transposes
    //   it from the source, xᵀ quantized from the FP32 input at once; how the recipe transposes
    //   them.
    struct SavedLinear {
        explicit SavedLinear(Memory& memory)
            : x(memory), w(memory), x_t(memory), x_bf16(memory), w_bf16(memory), b_bf16(memory) {}
        DeviceQuantized x, w, x_t;
        TransposeMethod x_method{}, w_method{};
        bool planned = false; // a forward has set the methods
        Buffer<__nv_bfloat16> x_bf16, w_bf16;
        Buffer<__nv_bfloat16> b_bf16; // the bias of a GEMM with a BF16 output
        // The BF16 x the GEMMs read: x_bf16, or the copy the op that made x keeps for its own
        // backward (flash attention's output, in its state, which outlives this layer's
        // backward).
        const __nv_bfloat16* x_kept = nullptr;
        int64_t x_kept_count = 0;
        const float* staged_for = nullptr; // x_kept was written for the input at this address
        // Or x is an activation's output, left for the forward to compute as it quantizes it
        // (an FP8 layer with BF16 sources: quantize.h's ElementwiseSource), for staged_for.
        std::optional<ElementwiseSource> x_computed;
    };
    SavedLinear& saved_linear(const LinearPrecision* p);
    void linear_forward_fp8(const LinearForwardArgs<float>& a);
    const DeviceQuantized& quantized_input(SavedLinear& layer, Quantizer& input, Quantizer& input_t,
                                           const LinearForwardArgs<float>& a);
    void linear_backward_fp8(const LinearBackwardArgs<float>& a);
    void linear_backward_dense(const LinearBackwardArgs<float>& a);
    template <typename Dy>
    void bias_grad(const LinearBackwardArgs<float>& a, const Dy* dy);
    // Where the op writing `out`, the input of `consumer`'s next forward, writes it instead:
    // the layer's BF16 operand, if it takes one (a BF16 layer, or an FP8 layer with BF16
    // sources: ops.h's `consumer`), else nullptr.
    __nv_bfloat16* staged_bf16(const LinearPrecision* consumer, const float* out, int64_t count);
    Buffer<__nv_bfloat16>& input_bf16_slot(const LinearPrecision* layer);
    // The BF16 x of a layer that takes one: as the op that wrote x staged it, else x rounded.
    const __nv_bfloat16* input_bf16(SavedLinear& layer, const LinearForwardArgs<float>& a);
    // The same where the op keeps that operand itself, at `kept`: whether `consumer` takes it.
    bool stage_kept_bf16(const LinearPrecision* consumer, const float* out,
                         const __nv_bfloat16* kept, int64_t count);
    // The same for a backward op writing `grad`, the dy of `consumer`'s next backward: the BF16
    // dy that backward multiplies, at `at` where given, else in one slot, dy_bf16_, as one
    // backward reads it at a time.
    __nv_bfloat16* staged_dy_bf16(const LinearPrecision* consumer, const float* grad, int64_t count,
                                  __nv_bfloat16* at = nullptr);
    // Where a BF16 or FP8 layer writes its output for the flash attention that reads it (ops.h's
    // AttentionConsumer): the qkv in that attention's state; nullptr where there is none.
    __nv_bfloat16* attention_qkv(const AttentionConsumer<float>* attention, const float* out,
                                 int64_t count);
    // Where a BF16 or FP8 layer writes a BF16 output, as autocast returns it, for the op that
    // reads it in BF16: flash attention's qkv (attention_qkv), or an elementwise op's input,
    // packed in place (to_elementwise); nullptr where out stays FP32.
    __nv_bfloat16* bf16_output(const LinearForwardArgs<float>& a);
    // The same for a dgrad's d_in: flash attention's BF16 d_out (d_out_bf16_), or an
    // elementwise backward's or a norm's input, packed in place (d_in_for_reader).
    __nv_bfloat16* bf16_d_in(const LinearBackwardArgs<float>& a);
    // A BF16 layer's dy (or an FP8 layer's with BF16 sources): the one staged for it, else
    // d_out rounded.
    const __nv_bfloat16* dy_bf16(const LinearBackwardArgs<float>& a);
    // An activation between two FP8 layers with BF16 sources writes nothing: the layer reading
    // its output (`out` for `consumer`'s forward; `grad`, the dy of `layer`'s backward) quantizes
    // `source`, computing the output as it loads it. Whether the op leaves it so: only where its
    // inputs are BF16 (`packed`).
    bool computed_by_consumer(const LinearPrecision* consumer, const float* out, int64_t count,
                              bool packed, const ElementwiseSource& source);
    bool dy_computed_by(const LinearPrecision* layer, const float* grad, int64_t count, bool packed,
                        const ElementwiseSource& source);
    // The source left for this forward's x (backward's dy), if one was; where the kernel cannot
    // compute it for this shape (quantizes_as_computed()), the activation's output is written in
    // BF16 then and staged as the op would have, and nullopt returned.
    std::optional<ElementwiseSource> computed_input(SavedLinear& layer,
                                                    const LinearForwardArgs<float>& a);
    std::optional<ElementwiseSource> computed_dy(const LinearBackwardArgs<float>& a);
    // Both from the one left in `computed`, refused unless it `matches` the layer's operand
    // (rows × cols), and either taken (the staging cleared: `staged_for`) or written in BF16 into
    // `slot` and staged there (`staged_at`).
    std::optional<ElementwiseSource> take_computed(std::optional<ElementwiseSource>& computed,
                                                   bool matches, const char* refusal, int64_t rows,
                                                   int64_t cols, const float*& staged_for,
                                                   const __nv_bfloat16*& staged_at,
                                                   Buffer<__nv_bfloat16>& slot);
    // The activation's output, rows × cols in BF16, written into `slot`.
    const __nv_bfloat16* materialized(const ElementwiseSource& source, int64_t rows, int64_t cols,
                                      Buffer<__nv_bfloat16>& slot);
    // write(operand) where the op writes a staged operand, else write(out).
    template <typename Write>
    static void write_to(__nv_bfloat16* operand, float* out, Write write) {
        if (operand)
            write(operand);
        else
            write(out);
    }
    // read(x) with x as stored: FP32, or BF16 packed two to a float (packs_bf16()).
    template <typename Read>
    static void read_as_stored(const float* x, bool packed, Read read) {
        if (packed)
            read(reinterpret_cast<const __nv_bfloat16*>(x));
        else
            read(x);
    }
    // x rounded to BF16 into `slot`.
    const __nv_bfloat16* rounded_bf16(const float* x, int64_t count, Buffer<__nv_bfloat16>& slot);
    void per_head_gemm(const float* a, bool trans_a, const float* b, bool trans_b, float* c,
                       int64_t m, int64_t n, int64_t k, int64_t batch);
    float* scratch_floats(int64_t floats); // scratch_, grown to at least `floats`
    FlashAttention& flash();
    // The optimizer's chunks of `spans` on the device (rebuilt when the spans change).
    const AdamWChunk* adamw_chunks(const std::vector<TensorSpan>& spans);

    Stream stream_;
    DeviceMemory memory_; // outlives the buffers below
    OpProfiler profiler_;
    CublasLtGemm gemm_;
    Buffer<float> scratch_, q_, k_, v_, y_, dq_, dk_, dv_, scores_;
    Buffer<__nv_bfloat16> dy_bf16_, d_qkv_bf16_, d_out_bf16_;
    // A backward op wrote this layer's dy, for its FP32 gradient at this address, in BF16 there
    // (staged_dy_bf16).
    struct StagedDy {
        const float* for_grad = nullptr;
        const LinearPrecision* layer = nullptr;
        const __nv_bfloat16* at = nullptr;
        int64_t count = 0;
        std::optional<ElementwiseSource> computed; // instead of `at` (dy_computed_by)
    } dy_staged_;
    // The output for which a GEMM wrote the BF16 qkv of the attention state qkv_staged_in_, and
    // the d_out for which a dgrad wrote d_out_bf16_.
    const float* qkv_staged_in_ = nullptr;
    const float* qkv_staged_for_ = nullptr;
    const float* d_out_staged_for_ = nullptr;
    std::unique_ptr<FlashAttention> flash_; // built at the first BF16 attention
    Buffer<int32_t> positions_, sorted_tokens_, sorted_positions_; // embedding backward
    Buffer<uint8_t> sort_temp_;
    std::vector<TensorSpan> chunk_spans_; // the spans chunks_ was built for
    Buffer<AdamWChunk> chunks_;
    Buffer<double> norm_partials_;
    Buffer<float> span_amax_; // FP8-LM storage: per-span amaxes
    PlanRunner plans_;
    Fp8Transposer transposer_;
    ScaledGemm scaled_gemm_;
    std::unordered_map<const LinearPrecision*, std::unique_ptr<SavedLinear>> saved_linears_;
    DeviceQuantized dy_, w_t_, dy_t_, x_t_;  // one backward's transient operands
    DeviceQuantized x_transient_;            // the forward's x of layers that keep none
    Buffer<__nv_bfloat16> x_bf16_transient_; // the BF16 x an FP8 layer quantizes
};

// Whether a CUDA device is present (and the driver usable).
bool device_available();

} // namespace octet::cuda
