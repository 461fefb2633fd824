// The ops interface: every operation the model runs, forward and backward, implemented by each
// backend (cpu/ now, cuda/ next). Pointers are the backend's memory. Shapes: B batch, T sequence,
// C channels, NH heads, HS = C / NH head size, V vocabulary, N = B·T tokens; row-major, the last
// dimension contiguous.
//
// Conventions:
// - Backward functions WRITE the gradient of their activation input (d_in, d_x, d_qkv), so its
//   buffer needs no zeroing and a GEMM producing it reads no old output, and ACCUMULATE (+=)
//   into parameter gradients (tied weights, micro-batches: callers zero those), but for a linear
//   layer's d_weight when its caller asks it written (LinearBackwardArgs::add_to_d_weight: the
//   first micro-batch of a step, where the wgrad GEMM then reads no old gradient and nothing
//   zeroes the big matrices). The norms' d_x is an exception too: it is the residual stream's
//   gradient, which also flows past the block, so they add to it.
// - `T` is the storage and arithmetic type: float for training, double for the float64
//   finite-difference checks (CPU only).
// - Softmax, normalization statistics and the loss are computed in at least float.
// - `consumer` (norms, activations, attention): the linear layer whose forward alone reads the
//   op's `out`, next; nullptr where `out` is read as T. A backend that keeps that layer's
//   operands rounded or quantized may write them from the op instead of `out`, which is then
//   left unwritten (the GPU writes a BF16 layer's operand, saving a pass that casts it).
// - `consumer` of a backward (and of the loss): the same for the gradient the op writes, read as
//   dy by that layer's backward, next. The norms' d_x also carries on down the residual stream,
//   so they write it whatever the consumer.
// - `producer` (activations, the loss): the linear layer that wrote the op's input x (forward)
//   for it alone (LinearForwardArgs::to_elementwise). A BF16 or FP8 layer stores such an output
//   rounded to BF16, as autocast's linear layers return it, and a backend may pack it two to a T
//   (packs_bf16()): the op knows from its producer how x is stored. The backward ops read d_out
//   the same way from the layer whose dgrad wrote it for them (LinearBackwardArgs::
//   d_in_for_reader): the activations from their `consumer`, the norms from their `reader`, the
//   layer that read their output. The activations' d_x is their producer's dy.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/error.h"
#include "ops/adamw_update.h"
#include "ops/memory.h"
#include "ops/scaled_adamw.h"

namespace octet {

class LinearPrecision;

struct AttentionShape {
    int64_t batch, seq, heads, head_size;
    // Attention in BF16 where the backend has a fused kernel for it (the GPU's flash attention,
    // as autocast runs it); the CPU oracle always computes exactly.
    bool bf16 = false;
};

// The attention that alone reads a linear layer's output (its qkv, forward) or d_in (its d_out,
// backward) next: a backend whose attention keeps its own copies (Ops::attention_keeps_input())
// may write them there from the GEMM, leaving `out` / `d_in` unwritten.
template <typename T>
struct AttentionConsumer {
    T* state; // that attention's forward state (forward only)
    AttentionShape shape;
};

template <typename T>
struct LinearForwardArgs {
    T* out;          // [N, M]
    const T* in;     // [N, K]
    const T* weight; // [M, K]
    const T* bias;   // [M] or nullptr
    int64_t n, k, m;
    LinearPrecision* precision; // how the GEMM operands are represented; nullptr = exact
    const AttentionConsumer<T>* attention = nullptr; // reads `out` next, or nullptr
    const T* residual = nullptr; // [N, M] added to `out` (the residual stream), or nullptr
    // `out` is read only by an elementwise op naming this layer its producer: a BF16 layer
    // rounds its bias and then `out` to BF16, an FP8 layer `out` alone (its bias joins the FP32
    // product, as in TransformerEngine's epilogue); either may pack `out` (Ops::packs_bf16()).
    bool to_elementwise = false;
};

template <typename T>
struct LinearBackwardArgs {
    T* d_in;         // [N, K], written; nullptr to skip dgrad
    T* d_weight;     // [M, K], accumulated (or written: add_to_d_weight)
    T* d_bias;       // [M] or nullptr, accumulated
    const T* d_out;  // [N, M]
    const T* in;     // [N, K] the forward's input, unchanged; may be nullptr (or overwritten)
                     // where precision->keeps_input(): the forward kept what the backward reads
    const T* weight; // [M, K]
    int64_t n, k, m;
    LinearPrecision* precision;
    const AttentionConsumer<T>* attention = nullptr; // reads `d_in` next, or nullptr
    // `d_in` is read only by a backward op that names this layer as the one that wrote its d_out
    // (an activation's `consumer`, a norm's `reader`): a BF16 or FP8 layer rounds it to BF16
    // (autocast's dgrad), and may pack it (Ops::packs_bf16()).
    bool d_in_for_reader = false;
    // false: d_weight is written, whatever it held (d_bias is still added to).
    bool add_to_d_weight = true;
};

// Ops recorded once and replayed on the same buffers (a CUDA graph): Ops::record().
class OpsGraph {
  public:
    virtual ~OpsGraph() = default;
    virtual void replay() = 0;
};

template <typename T>
class Ops {
  public:
    virtual ~Ops() = default;

    // Where this backend's pointers live; everything passed to the ops below is allocated here.
    virtual Memory& memory() = 0;

    // Whether record() records (the GPU); the CPU's ops run as they are called.
    virtual bool records() const { return false; }
    // Records the ops `enqueue` issues, running none of them, into a graph whose replay() runs
    // them again with the arguments they had: the same pointers, sizes and host-side decisions.
    // So what varies between replays must reach them through memory (the optimizer's
    // hyperparameters, the batch's tokens), and the buffers must stay where they were
    // (Memory::layout_version()).
    virtual std::unique_ptr<OpsGraph> record(const std::function<void()>& enqueue) {
        (void)enqueue;
        throw Error("record: this backend runs its ops as they are called");
    }

    // Whether `layer` packs what it writes for its reader (to_elementwise, d_in_for_reader) two
    // BF16 values to a T, so that buffer needs only (count + 1) / 2 elements; else it holds the
    // rounded values themselves.
    virtual bool packs_bf16(const LinearPrecision* layer) = 0;

    // out[b,t,:] = wte[tokens[b,t],:] + (wpe ? wpe[t,:] : 0)
    virtual void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe,
                                   int64_t batch, int64_t seq, int64_t c) = 0;
    virtual void embedding_backward(T* d_wte, T* d_wpe, const T* d_out, const int32_t* tokens,
                                    int64_t batch, int64_t seq, int64_t c) = 0;

    // LayerNorm over the last dim; mean and rstd [N] are saved for the backward, which adds
    // its d_x to the given one (the residual stream's gradient). The backward's `reader` wrote
    // d_out, `consumer` reads d_x next (see above).
    virtual void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b,
                                   int64_t n, int64_t c, double eps,
                                   const LinearPrecision* consumer) = 0;
    virtual void layernorm_backward(T* d_x, T* d_w, T* d_b, const T* d_out, const T* x, const T* w,
                                    const T* mean, const T* rstd, int64_t n, int64_t c,
                                    const LinearPrecision* reader,
                                    const LinearPrecision* consumer) = 0;
    // RMSNorm: out = x · rstd · w, rstd = 1 / sqrt(mean(x²) + eps) saved.
    virtual void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t c,
                                 double eps, const LinearPrecision* consumer) = 0;
    virtual void rmsnorm_backward(T* d_x, T* d_w, const T* d_out, const T* x, const T* w,
                                  const T* rstd, int64_t n, int64_t c,
                                  const LinearPrecision* reader,
                                  const LinearPrecision* consumer) = 0;

    virtual void linear_forward(const LinearForwardArgs<T>& a) = 0;
    virtual void linear_backward(const LinearBackwardArgs<T>& a) = 0;

    // Causal multi-head attention on packed qkv [N, 3C] (q | k | v); `state` (of
    // attention_state_size() elements) keeps what the backward needs: the softmax probabilities
    // [B, NH, T, T] on the CPU, the log-sum-exp rows, the output and qkv with flash attention.
    virtual int64_t attention_state_size(const AttentionShape& a) = 0;
    // Whether `state` also keeps the qkv the backward reads (as the GPU's flash attention keeps
    // it in BF16): attention_backward then takes qkv nullptr, and its buffer may be reused.
    virtual bool attention_keeps_input(const AttentionShape& a) = 0;
    virtual void attention_forward(T* out, T* state, const T* qkv, const AttentionShape& a,
                                   const LinearPrecision* consumer) = 0;
    virtual void attention_backward(T* d_qkv, const T* d_out, const T* qkv, const T* state,
                                    const AttentionShape& a, const LinearPrecision* consumer) = 0;

    // Rotary embeddings (rotate-half pairing, GPT-NeoX/Llama) applied to q and k of packed qkv:
    // out = rope(in) with v copied; the backward rotates the gradient back.
    virtual void rope_forward(T* out, const T* qkv, const AttentionShape& a, double base) = 0;
    virtual void rope_backward(T* d_qkv, const T* d_out, const AttentionShape& a, double base,
                               const LinearPrecision* consumer) = 0;

    // GELU, tanh approximation (GPT-2). Between two linear layers: `producer` wrote x and reads
    // d_x, `consumer` reads out and wrote d_out (see above; either may be nullptr).
    virtual void gelu_forward(T* out, const T* x, int64_t n, const LinearPrecision* producer,
                              const LinearPrecision* consumer) = 0;
    virtual void gelu_backward(T* d_x, const T* d_out, const T* x, int64_t n,
                               const LinearPrecision* producer,
                               const LinearPrecision* consumer) = 0;
    // SwiGLU on [N, 2H] = (gate | up): out [N, H] = silu(gate) · up.
    virtual void swiglu_forward(T* out, const T* x, int64_t n, int64_t h,
                                const LinearPrecision* producer,
                                const LinearPrecision* consumer) = 0;
    virtual void swiglu_backward(T* d_x, const T* d_out, const T* x, int64_t n, int64_t h,
                                 const LinearPrecision* producer,
                                 const LinearPrecision* consumer) = 0;

    // Softmax cross-entropy over [N, V] logits fused with its gradient: losses [N] and d_logits =
    // (softmax(logits) − onehot(target)) · d_loss (d_loss = 1/N for a mean loss). The loss is the
    // root of the graph, so its gradient is known in the forward: one pass over the logits serves
    // both, and d_logits may be the logits themselves (one [N, V] buffer). `head`: the layer that
    // wrote the logits (its `producer`) and reads d_logits as dy next (its `consumer`).
    virtual void softmax_xent(T* losses, T* d_logits, const T* logits, const int32_t* targets,
                              T d_loss, int64_t n, int64_t v, const LinearPrecision* head) = 0;

    // x ·= s (the mean over accumulated micro-batches).
    virtual void scale(T* x, double s, int64_t n) = 0;

    // One AdamW step over FP32 parameters w, gradients g and moments m, v (FP32 or BF16:
    // MomentStorage) in the parameters' flat layout (spans name the tensors): the global L2 norm
    // of g is taken in double, the clipping factor set to max_norm / norm when max_norm > 0 and
    // the norm exceeds it, then every element updated by adamw_update() on its decoded moments.
    // `h` (its clip unused) and `norm` ([norm before clipping, clipping factor]) are in this
    // backend's memory, so a recorded step reads each step's h and leaves its norm where the host
    // finds it.
    virtual void adamw_step(float* w, const float* g, MomentStorage m, MomentStorage v,
                            const std::vector<TensorSpan>& spans, const AdamWHyper* h,
                            double max_norm, double* norm) = 0;

    // MOSS's predicted weight bounds (recipe/moss_weight_scaling.h), `count` doubles in this
    // backend's memory, each advanced by the AdamW step just taken, whose hyperparameters `h`
    // holds: bound ← advance_weight_bound(bound, h->decay, h->lr, h->max_update). The weights
    // are decayed tensors.
    virtual void advance_weight_bounds(double* bounds, int64_t count, const AdamWHyper* h) = 0;

    // One AdamW step over FP8-LM's scaled state (ops/scaled_adamw.h): every span's gradient
    // rounded in place through s.weight_grad under its own scale, the global norm and clipping
    // as adamw_step, then every parameter updated from the decoded state, m, v and the master
    // stored again under fresh per-span scales, and w set to the master's stored values.
    // `norm` is that of the rounded gradients.
    virtual void adamw_step_scaled(float* w, float* g, const ScaledAdamWState& s,
                                   const std::vector<TensorSpan>& spans, const AdamWHyper* h,
                                   double max_norm, double* norm) = 0;
    // dst ← x per span, each under the scale of its amax; x ← src decoded.
    virtual void store_scaled(const ScaledTensors& dst, const float* x,
                              const std::vector<TensorSpan>& spans) = 0;
    virtual void load_scaled(float* x, const ScaledTensors& src,
                             const std::vector<TensorSpan>& spans) = 0;
};

// The elements of a buffer for `count` values that `layer` writes for an elementwise op.
template <typename T>
int64_t elementwise_buffer_size(Ops<T>& ops, const LinearPrecision* layer, int64_t count) {
    return ops.packs_bf16(layer) ? (count + 1) / 2 : count;
}

} // namespace octet
