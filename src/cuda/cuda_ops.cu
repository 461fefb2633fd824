// CudaOps (see cuda_ops.h): the ops interface over the CUDA kernels (kernels.h) and cuBLASLt.
#include "cuda/cuda_ops.h"

#include <cmath>
#include <string>
#include <utility>

#include "common/error.h"
#include "cuda/check.h"
#include "cuda/graph.h"
#include "cuda/launch.cuh"
#include "ops/linear_precision.h"

namespace octet::cuda {

Stream::Stream() {
    OCTET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

Stream::~Stream() {
    if (stream_) cudaStreamDestroy(stream_);
}

bool device_available() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); // no driver: clear the sticky error
        return false;
    }
    return count > 0;
}

CudaOps::CudaOps()
    : memory_(stream_.get()), profiler_(stream_.get()), scratch_(memory_), q_(memory_), k_(memory_),
      v_(memory_), y_(memory_), dq_(memory_), dk_(memory_), dv_(memory_), scores_(memory_),
      dy_bf16_(memory_), d_qkv_bf16_(memory_), d_out_bf16_(memory_), positions_(memory_),
      sorted_tokens_(memory_), sorted_positions_(memory_), sort_temp_(memory_), chunks_(memory_),
      norm_partials_(memory_, adamw_norm_blocks), span_amax_(memory_), plans_(memory_),
      transposer_(memory_, plans_), scaled_gemm_(gemm_, memory_), dy_(memory_), w_t_(memory_),
      dy_t_(memory_), x_t_(memory_), x_transient_(memory_), x_bf16_transient_(memory_) {}

std::unique_ptr<OpsGraph> CudaOps::record(const std::function<void()>& enqueue) {
    if (profiler_.enabled())
        throw Error("record: the op profiler is on; it times each op from the host, which a "
                    "recorded graph cannot");
    return std::make_unique<CudaGraph>(stream(), enqueue);
}

float* CudaOps::scratch_floats(int64_t floats) {
    if (scratch_.size() < floats) scratch_.resize(floats);
    return scratch_.data();
}

void CudaOps::embedding_forward(float* out, const int32_t* tokens, const float* wte,
                                const float* wpe, int64_t batch, int64_t seq, int64_t c) {
    const auto timed = profiler_.scope("embedding_forward");
    cuda::embedding_forward(out, tokens, wte, wpe, batch, seq, c, stream());
}

void CudaOps::embedding_backward(float* d_wte, float* d_wpe, const float* d_out,
                                 const int32_t* tokens, int64_t batch, int64_t seq, int64_t c) {
    const auto timed = profiler_.scope("embedding_backward");
    const int64_t n = batch * seq;
    for (Buffer<int32_t>* b : {&positions_, &sorted_tokens_, &sorted_positions_}) b->resize(n);
    sort_temp_.resize(int64_t(embedding_sort_bytes(n)));
    const EmbeddingScratch scratch{
        positions_.data(),         sorted_tokens_.data(),
        sorted_positions_.data(),  sort_temp_.data(),
        size_t(sort_temp_.size()), scratch_floats(column_sum_scratch(batch, seq * c))};
    cuda::embedding_backward(d_wte, d_wpe, d_out, tokens, batch, seq, c, scratch, stream());
}

void CudaOps::layernorm_forward(float* out, float* mean, float* rstd, const float* x,
                                const float* w, const float* b, int64_t n, int64_t c, double eps,
                                const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("layernorm_forward");
    write_to(staged_bf16(consumer, out, n * c), out, [&](auto* dst) {
        cuda::layernorm_forward(dst, mean, rstd, x, w, b, n, c, eps, stream());
    });
}

void CudaOps::layernorm_backward(float* d_x, float* d_w, float* d_b, const float* d_out,
                                 const float* x, const float* w, const float* mean,
                                 const float* rstd, int64_t n, int64_t c,
                                 const LinearPrecision* reader, const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("layernorm_backward");
    __nv_bfloat16* dy = staged_dy_bf16(consumer, d_x, n * c);
    float* scratch = scratch_floats(norm_backward_scratch(n, c));
    read_as_stored(d_out, packs_bf16(reader), [&](const auto* g) {
        cuda::layernorm_backward(d_x, dy, d_w, d_b, g, x, w, mean, rstd, n, c, scratch, stream());
    });
}

void CudaOps::rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n,
                              int64_t c, double eps, const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("rmsnorm_forward");
    write_to(staged_bf16(consumer, out, n * c), out,
             [&](auto* dst) { cuda::rmsnorm_forward(dst, rstd, x, w, n, c, eps, stream()); });
}

void CudaOps::rmsnorm_backward(float* d_x, float* d_w, const float* d_out, const float* x,
                               const float* w, const float* rstd, int64_t n, int64_t c,
                               const LinearPrecision* reader, const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("rmsnorm_backward");
    __nv_bfloat16* dy = staged_dy_bf16(consumer, d_x, n * c);
    float* scratch = scratch_floats(norm_backward_scratch(n, c));
    read_as_stored(d_out, packs_bf16(reader), [&](const auto* g) {
        cuda::rmsnorm_backward(d_x, dy, d_w, g, x, w, rstd, n, c, scratch, stream());
    });
}

namespace {

bool bf16_operands(const LinearPrecision* p) {
    return p && p->kind() == LinearPrecision::Kind::bf16;
}

bool fp8_operands(const LinearPrecision* p) {
    return p && p->kind() == LinearPrecision::Kind::fp8;
}

// Whether the ops that write the layer's x and dy write them in BF16 for it: BF16 layers, and
// FP8 layers that quantize BF16 sources (LinearPrecision::fp8_bf16_sources()).
bool takes_bf16(const LinearPrecision* p) {
    return bf16_operands(p) || (fp8_operands(p) && p->fp8_bf16_sources());
}

// Whether an operand was written in BF16 for `expected` (`staged`, then cleared), so the op that
// reads it takes it instead of rounding its FP32 input. One written for another buffer, or that
// does not `fit` its reader, is refused.
bool take_staged(const float*& staged, const float* expected, bool fits, const char* operand) {
    if (!staged) return false;
    if (staged != expected || !fits)
        throw Error(std::string(operand) + " was written in BF16 for another layer or buffer");
    staged = nullptr;
    return true;
}

// A buffer of packed BF16 values (Ops::packs_bf16()) as what it holds.
const __nv_bfloat16* bf16_bits(const float* packed) {
    return reinterpret_cast<const __nv_bfloat16*>(packed);
}

// Flash attention's state, in floats, each part 16-byte aligned (cuDNN requires it of its
// tensors; B · NH · T is odd for odd head counts and sequence lengths): the log-sum-exp rows
// [B, NH, T] in FP32, then its BF16 output [B, T, C] and BF16 qkv [B, T, 3C] (what the backward
// reads), packed two to a float.
int64_t round_to_16_bytes(int64_t floats) {
    return (floats + 3) / 4 * 4;
}

int64_t flash_output_offset(const AttentionShape& a) {
    return round_to_16_bytes(a.batch * a.heads * a.seq);
}

int64_t flash_qkv_offset(const AttentionShape& a) {
    return flash_output_offset(a) +
           round_to_16_bytes((a.batch * a.seq * a.heads * a.head_size + 1) / 2);
}

} // namespace

CudaOps::SavedLinear& CudaOps::saved_linear(const LinearPrecision* p) {
    std::unique_ptr<SavedLinear>& layer = saved_linears_[p];
    if (!layer) layer = std::make_unique<SavedLinear>(memory_);
    return *layer;
}

// The CPU's LinearPrecision::forward_fp8 / dgrad_fp8 / wgrad_fp8 on the device: the recipe's
// quantizers plan, the GPU runs the plans and the transposes, ScaledGemm multiplies.
void CudaOps::linear_forward_fp8(const LinearForwardArgs<float>& a) {
    SavedLinear& layer = saved_linear(a.precision);
    const LinearPrecision::Fp8Quantizers q = a.precision->fp8_quantizers();
    {
        const auto timed = profiler_.scope("linear.quantize");
        const QuantizePlan w_plan =
            plans_.quantize(q.weight, a.weight, a.m, a.k, layer.w, stream());
        layer.w_method = transpose_method(w_plan, a.m, a.k);
    }
    // Bias and residual in the GEMM's epilogue; a BF16 output for the op that reads it so.
    __nv_bfloat16* bf16_out = bf16_output(a);
    scaled_gemm_.run(
        quantized_input(layer, q.input, q.input_t, a), layer.w,
        {bf16_out ? static_cast<void*>(bf16_out) : a.out, bf16_out != nullptr, a.bias, a.residual},
        true, stream());
}

__nv_bfloat16* CudaOps::bf16_output(const LinearForwardArgs<float>& a) {
    __nv_bfloat16* out = nullptr;
    if (a.to_elementwise) {
        if (a.attention) throw Error("linear forward: an output for attention and an activation");
        out = reinterpret_cast<__nv_bfloat16*>(a.out);
    } else {
        out = attention_qkv(a.attention, a.out, a.n * a.m);
    }
    if (out && a.residual) throw Error("linear forward: a BF16 output takes no residual");
    return out;
}

__nv_bfloat16* CudaOps::bf16_d_in(const LinearBackwardArgs<float>& a) {
    if (a.attention && a.attention->shape.bf16) {
        d_out_bf16_.resize(a.n * a.k);
        d_out_staged_for_ = a.d_in;
        return d_out_bf16_.data();
    }
    return a.d_in_for_reader ? reinterpret_cast<__nv_bfloat16*>(a.d_in) : nullptr;
}

// x quantized for the forward GEMM, and xᵀ quantized for the wgrad where the recipe takes it from
// the source (else the backward transposes the kept x). Recipes that quantize both orientations in
// one pass (quantizes_both_in_one_pass) get both so.
const DeviceQuantized& CudaOps::quantized_input(SavedLinear& layer, Quantizer& input,
                                                Quantizer& input_t,
                                                const LinearForwardArgs<float>& a) {
    // A transpose method follows the plan's block shape, which a layer keeps from step to step:
    // after the first forward, a layer whose xᵀ comes from the source quantizes x into the
    // buffer all such layers share.
    const bool transient = layer.planned && layer.x_method == TransposeMethod::from_source;
    DeviceQuantized* x = transient ? &x_transient_ : &layer.x;
    {
        // Such layers quantize, both orientations in one pass, the BF16 x the op that wrote it
        // staged for them, or the activation output it left to be computed here.
        const auto timed = profiler_.scope("linear.quantize");
        const auto both = [&](const auto& source) {
            return transposer_.quantize_both(input, input_t, source, a.n, a.k, x_transient_,
                                             layer.x_t, stream());
        };
        bool one_pass = false;
        if (a.precision->fp8_bf16_sources()) {
            // Taking the computed source first: where it cannot be taken, it is written in BF16
            // and staged, which input_bf16 then reads.
            const std::optional<ElementwiseSource> computed = computed_input(layer, a);
            one_pass = computed ? both(*computed) : both(input_bf16(layer, a));
        }
        if (one_pass) {
            layer.x_method = TransposeMethod::from_source;
            layer.planned = true;
            if (layer.x.codes.size()) layer.x = DeviceQuantized(memory_);
            return x_transient_;
        }
        const QuantizePlan x_plan = plans_.quantize(input, a.in, a.n, a.k, *x, stream());
        layer.x_method = transpose_method(x_plan, a.n, a.k);
        layer.planned = true;
    }
    const bool keep = layer.x_method != TransposeMethod::from_source;
    if (transient && keep) {
        std::swap(layer.x, x_transient_); // the plans changed kind (or `a.precision` is new)
        x = &layer.x;
    } else if (!transient && !keep) {
        std::swap(layer.x, x_transient_); // the first step's copy, not kept past this GEMM
        layer.x = DeviceQuantized(memory_);
        x = &x_transient_;
    }
    if (!keep) {
        const auto timed = profiler_.scope("linear.transpose");
        transposer_.from_source(a.in, a.n, a.k, input_t, layer.x_t, stream());
    }
    return *x;
}

void CudaOps::linear_backward_fp8(const LinearBackwardArgs<float>& a) {
    SavedLinear& layer = saved_linear(a.precision);
    if (!layer.planned) throw Error("linear backward: no forward kept this layer's FP8 operands");
    const LinearPrecision::Fp8Quantizers q = a.precision->fp8_quantizers();
    // dy for the dgrad and dyᵀ for the wgrad: in one pass where the recipe allows it (dy_t_ ready),
    // which also sums dy's columns into the bias gradient.
    TransposeMethod dy_method = TransposeMethod::from_source;
    bool dy_t_ready;
    {
        // Such layers quantize the BF16 dy the op that wrote d_out staged for them, or the
        // activation gradient it left to be computed here.
        const auto timed = profiler_.scope("linear.quantize");
        const auto both = [&](const auto& source) {
            return transposer_.quantize_both(q.grad, q.grad_t, source, a.n, a.m, dy_, dy_t_,
                                             stream(), a.d_bias);
        };
        dy_t_ready = false;
        if (a.precision->fp8_bf16_sources()) {
            const std::optional<ElementwiseSource> computed = computed_dy(a); // before dy_bf16
            dy_t_ready = computed ? both(*computed) : both(dy_bf16(a));
        }
        if (!dy_t_ready) {
            const QuantizePlan dy_plan = plans_.quantize(q.grad, a.d_out, a.n, a.m, dy_, stream());
            dy_method = transpose_method(dy_plan, a.n, a.m);
        }
    }
    if (a.d_in) { // d_in[n, k] = dy[n, m] · (Wᵀ[k, m])ᵀ
        {
            const auto timed = profiler_.scope("linear.transpose");
            transposer_.run(layer.w, layer.w_method, q.weight_t, a.weight, w_t_, stream());
        }
        const auto dgrad = profiler_.scope("linear.dgrad");
        __nv_bfloat16* d_in_bf16 = bf16_d_in(a);
        scaled_gemm_.run(dy_, w_t_,
                         {d_in_bf16 ? static_cast<void*>(d_in_bf16) : a.d_in, d_in_bf16 != nullptr},
                         false, stream());
    }
    { // d_W[m, k] += dyᵀ[m, n] · (xᵀ[k, n])ᵀ (or =: add_to_d_weight)
        const DeviceQuantized* x_t = &layer.x_t; // quantized from the source in the forward
        {
            const auto timed = profiler_.scope("linear.transpose");
            if (!dy_t_ready) transposer_.run(dy_, dy_method, q.grad_t, a.d_out, dy_t_, stream());
            if (layer.x_method != TransposeMethod::from_source) {
                transposer_.run(layer.x, layer.x_method, q.input_t, nullptr, x_t_, stream());
                x_t = &x_t_;
            }
        }
        const auto wgrad = profiler_.scope("linear.wgrad");
        scaled_gemm_.run(dy_t_, *x_t,
                         {a.d_weight, false, nullptr, a.add_to_d_weight ? a.d_weight : nullptr},
                         false, stream());
    }
    if (!dy_t_ready) bias_grad(a, a.d_out);
}

// A BF16 layer keeps its BF16 x for the backward; an FP8 one quantizes it in its forward, so
// all FP8 layers share one slot.
Buffer<__nv_bfloat16>& CudaOps::input_bf16_slot(const LinearPrecision* layer) {
    return bf16_operands(layer) ? saved_linear(layer).x_bf16 : x_bf16_transient_;
}

__nv_bfloat16* CudaOps::staged_bf16(const LinearPrecision* consumer, const float* out,
                                    int64_t count) {
    if (!takes_bf16(consumer)) return nullptr;
    Buffer<__nv_bfloat16>& slot = input_bf16_slot(consumer);
    slot.resize(count);
    stage_kept_bf16(consumer, out, slot.data(), count);
    return slot.data();
}

const __nv_bfloat16* CudaOps::input_bf16(SavedLinear& layer, const LinearForwardArgs<float>& a) {
    if (take_staged(layer.staged_for, a.in, layer.x_kept_count == a.n * a.k,
                    "linear forward: its input"))
        return layer.x_kept;
    layer.x_kept_count = a.n * a.k;
    return layer.x_kept = rounded_bf16(a.in, a.n * a.k, input_bf16_slot(a.precision));
}

bool CudaOps::stage_kept_bf16(const LinearPrecision* consumer, const float* out,
                              const __nv_bfloat16* kept, int64_t count) {
    if (!takes_bf16(consumer)) return false;
    SavedLinear& layer = saved_linear(consumer);
    layer.x_computed.reset();
    layer.x_kept = kept;
    layer.x_kept_count = count;
    layer.staged_for = out;
    return true;
}

__nv_bfloat16* CudaOps::staged_dy_bf16(const LinearPrecision* consumer, const float* grad,
                                       int64_t count, __nv_bfloat16* at) {
    if (!takes_bf16(consumer)) return nullptr;
    if (!at) {
        dy_bf16_.resize(count);
        at = dy_bf16_.data();
    }
    dy_staged_ = {grad, consumer, at, count, std::nullopt};
    return at;
}

const __nv_bfloat16* CudaOps::dy_bf16(const LinearBackwardArgs<float>& a) {
    const __nv_bfloat16* staged = dy_staged_.at;
    if (take_staged(dy_staged_.for_grad, a.d_out,
                    dy_staged_.layer == a.precision && dy_staged_.count == a.n * a.m,
                    "linear backward: its dy"))
        return staged;
    return rounded_bf16(a.d_out, a.n * a.m, dy_bf16_);
}

bool CudaOps::computed_by_consumer(const LinearPrecision* consumer, const float* out, int64_t count,
                                   bool packed, const ElementwiseSource& source) {
    // An FP8 layer takes BF16 exactly where its sources are BF16 (stage_kept_bf16 checks it).
    if (!packed || !fp8_operands(consumer) || !stage_kept_bf16(consumer, out, nullptr, count))
        return false;
    saved_linear(consumer).x_computed = source;
    return true;
}

bool CudaOps::dy_computed_by(const LinearPrecision* layer, const float* grad, int64_t count,
                             bool packed, const ElementwiseSource& source) {
    if (!packed || !fp8_operands(layer) || !layer->fp8_bf16_sources()) return false;
    dy_staged_ = {grad, layer, nullptr, count, source};
    return true;
}

std::optional<ElementwiseSource> CudaOps::computed_input(SavedLinear& layer,
                                                         const LinearForwardArgs<float>& a) {
    return take_computed(layer.x_computed,
                         layer.staged_for == a.in && layer.x_kept_count == a.n * a.k,
                         "linear forward: its input was left to it for another buffer or shape",
                         a.n, a.k, layer.staged_for, layer.x_kept, input_bf16_slot(a.precision));
}

std::optional<ElementwiseSource> CudaOps::computed_dy(const LinearBackwardArgs<float>& a) {
    return take_computed(
        dy_staged_.computed,
        dy_staged_.for_grad == a.d_out && dy_staged_.layer == a.precision &&
            dy_staged_.count == a.n * a.m,
        "linear backward: its dy was left to it for another layer, buffer or shape", a.n, a.m,
        dy_staged_.for_grad, dy_staged_.at, dy_bf16_);
}

std::optional<ElementwiseSource>
CudaOps::take_computed(std::optional<ElementwiseSource>& computed, bool matches,
                       const char* refusal, int64_t rows, int64_t cols, const float*& staged_for,
                       const __nv_bfloat16*& staged_at, Buffer<__nv_bfloat16>& slot) {
    if (!computed) return std::nullopt;
    if (!matches) throw Error(refusal);
    const ElementwiseSource source = *computed;
    computed.reset();
    if (quantizes_as_computed(source, rows, cols)) {
        staged_for = nullptr;
        return source;
    }
    staged_at = materialized(source, rows, cols, slot);
    return std::nullopt;
}

const __nv_bfloat16* CudaOps::materialized(const ElementwiseSource& s, int64_t rows, int64_t cols,
                                           Buffer<__nv_bfloat16>& slot) {
    slot.resize(rows * cols);
    __nv_bfloat16* out = slot.data();
    using Op = ElementwiseSource::Op;
    switch (s.op) {
    case Op::gelu:
        cuda::gelu_forward(out, s.x, rows * cols, stream());
        break;
    case Op::gelu_backward:
        cuda::gelu_backward(out, s.d_out, s.x, rows * cols, stream());
        break;
    case Op::swiglu:
        cuda::swiglu_forward(out, s.x, rows, cols, stream());
        break;
    case Op::swiglu_backward:
        cuda::swiglu_backward(out, s.d_out, s.x, rows, cols / 2, stream());
    }
    return out;
}

bool CudaOps::packs_bf16(const LinearPrecision* layer) {
    return bf16_operands(layer) || fp8_operands(layer);
}

const __nv_bfloat16* CudaOps::rounded_bf16(const float* x, int64_t count,
                                           Buffer<__nv_bfloat16>& slot) {
    const auto timed = profiler_.scope("linear.cast_bf16");
    slot.resize(count);
    to_bf16(slot.data(), x, count, stream());
    return slot.data();
}

void CudaOps::linear_forward(const LinearForwardArgs<float>& a) {
    const auto timed = profiler_.scope("linear_forward");
    if (fp8_operands(a.precision)) return linear_forward_fp8(a);
    const bool bf16 = bf16_operands(a.precision);
    // out[n, m] = in[n, k] · W[m, k]ᵀ + bias; BF16 operands are kept for the backward.
    const void* in = a.in;
    const void* w = a.weight;
    const void* bias = a.bias;
    __nv_bfloat16* bf16_out = bf16 ? bf16_output(a) : nullptr;
    if (bf16) {
        SavedLinear& layer = saved_linear(a.precision);
        in = input_bf16(layer, a); // the op that made x may have written it in BF16
        w = rounded_bf16(a.weight, a.m * a.k, layer.w_bf16);
        // autocast's bias (and cuBLASLt has no FP32 bias with a BF16 output)
        if (bf16_out && a.bias) bias = rounded_bf16(a.bias, a.m, layer.b_bf16);
    }
    // out = in · Wᵀ + bias + residual, the residual read as the GEMM's C.
    gemm_.run({in, w, bf16, false, true, bf16_out ? static_cast<void*>(bf16_out) : a.out, bias,
               a.residual ? 1.0f : 0.0f, a.n, a.m, a.k, 1, 0, 0, 0, nullptr, bf16_out != nullptr,
               a.residual},
              stream());
}

void CudaOps::linear_backward(const LinearBackwardArgs<float>& a) {
    const auto timed = profiler_.scope("linear_backward");
    if (a.n == 0 || a.m == 0) {
        // No rows: dW = Σ over none is zero, written where asked (as the CPU backend does).
        if (!a.add_to_d_weight && a.m * a.k > 0)
            OCTET_CUDA_CHECK(
                cudaMemsetAsync(a.d_weight, 0, size_t(a.m * a.k) * sizeof(float), stream()));
        return;
    }
    if (fp8_operands(a.precision)) {
        linear_backward_fp8(a);
    } else {
        linear_backward_dense(a);
    }
}

// d_bias[j] += Σ_i dy[i, j] (the high-precision dy, or a BF16 layer's rounded one: cpu/linear.cpp).
template <typename Dy>
void CudaOps::bias_grad(const LinearBackwardArgs<float>& a, const Dy* dy) {
    if (!a.d_bias) return;
    const auto timed = profiler_.scope("linear.bias_grad");
    bias_backward(a.d_bias, dy, a.n, a.m, scratch_floats(bias_backward_scratch(a.n, a.m)),
                  stream());
}

void CudaOps::linear_backward_dense(const LinearBackwardArgs<float>& a) {
    const bool bf16 = bf16_operands(a.precision);
    const void* d_out = a.d_out;
    const void* w = a.weight;
    const void* in = a.in;
    if (bf16) {
        const SavedLinear& layer = saved_linear(a.precision);
        if (layer.x_kept_count != a.n * a.k || layer.w_bf16.size() != a.m * a.k)
            throw Error("linear backward: no forward of this shape kept its BF16 operands");
        const __nv_bfloat16* dy = dy_bf16(a);
        bias_grad(a, dy);
        d_out = dy;
        w = layer.w_bf16.data();
        in = layer.x_kept;
    } else if (!a.in) {
        throw Error("linear backward: an exact layer needs its forward's input");
    } else {
        bias_grad(a, a.d_out);
    }
    if (a.d_in) { // d_in[n, k] = d_out[n, m] · W[m, k]
        const auto dgrad = profiler_.scope("linear.dgrad");
        __nv_bfloat16* d_in_bf16 = bf16 ? bf16_d_in(a) : nullptr;
        gemm_.run({d_out, w, bf16, false, false, d_in_bf16 ? static_cast<void*>(d_in_bf16) : a.d_in,
                   nullptr, 0.0f, a.n, a.k, a.m, 1, 0, 0, 0, nullptr, d_in_bf16 != nullptr},
                  stream());
    }
    { // d_W[m, k] += d_out[n, m]ᵀ · in[n, k] (or =: add_to_d_weight)
        const auto wgrad = profiler_.scope("linear.wgrad");
        gemm_.run({d_out, in, bf16, true, false, a.d_weight, nullptr,
                   a.add_to_d_weight ? 1.0f : 0.0f, a.m, a.k, a.n},
                  stream());
    }
}

// c = op(a) · op(b) for each of `batch` contiguous [m, k] · [k, n] products (strict FP32).
void CudaOps::per_head_gemm(const float* a, bool trans_a, const float* b, bool trans_b, float* c,
                            int64_t m, int64_t n, int64_t k, int64_t batch) {
    gemm_.run(
        {a, b, false, trans_a, trans_b, c, nullptr, 0.0f, m, n, k, batch, m * k, k * n, m * n},
        stream());
}

int64_t CudaOps::attention_state_size(const AttentionShape& a) {
    if (!a.bf16) return a.batch * a.heads * a.seq * a.seq;
    return flash_qkv_offset(a) + (a.batch * a.seq * 3 * a.heads * a.head_size + 1) / 2;
}

bool CudaOps::attention_keeps_input(const AttentionShape& a) {
    return a.bf16;
}

__nv_bfloat16* CudaOps::attention_qkv(const AttentionConsumer<float>* attention, const float* out,
                                      int64_t count) {
    if (!attention || !attention->shape.bf16) return nullptr;
    const AttentionShape& a = attention->shape;
    if (count != a.batch * a.seq * 3 * a.heads * a.head_size)
        throw Error("linear forward: its output is not the qkv of the attention that reads it");
    qkv_staged_in_ = attention->state;
    qkv_staged_for_ = out;
    return reinterpret_cast<__nv_bfloat16*>(attention->state + flash_qkv_offset(a));
}

FlashAttention& CudaOps::flash() {
    if (!flash_) flash_ = std::make_unique<FlashAttention>(memory_);
    return *flash_;
}

void CudaOps::attention_forward(float* out, float* state, const float* qkv, const AttentionShape& a,
                                const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("attention_forward");
    if (a.bf16) {
        const int64_t n = a.batch * a.seq, c = a.heads * a.head_size;
        auto* o = reinterpret_cast<__nv_bfloat16*>(state + flash_output_offset(a));
        auto* qkv_bf16 = reinterpret_cast<__nv_bfloat16*>(state + flash_qkv_offset(a));
        // The QKV layer may have written it there (attention_qkv).
        if (!take_staged(qkv_staged_for_, qkv, qkv_staged_in_ == state,
                         "attention forward: its qkv"))
            to_bf16(qkv_bf16, qkv, n * 3 * c, stream());
        flash().forward(a, qkv_bf16, o, state, stream());
        // A BF16 consumer reads the output where the state keeps it for the backward.
        if (!stage_kept_bf16(consumer, out, o, n * c)) from_bf16(out, o, n * c, stream());
        return;
    }
    float* att = state;
    const int64_t bh = a.batch * a.heads, t = a.seq, hs = a.head_size;
    for (Buffer<float>* b : {&q_, &k_, &v_, &y_}) b->resize(bh * t * hs);
    scores_.resize(bh * t * t);
    split_heads(q_.data(), k_.data(), v_.data(), qkv, a, stream());
    // scores[T, T] = q · kᵀ; att = causal softmax(scores / √HS); y[T, HS] = att · v (per head)
    per_head_gemm(q_.data(), false, k_.data(), true, scores_.data(), t, t, hs, bh);
    causal_softmax(att, scores_.data(), bh * t, t, float(1.0 / std::sqrt(double(hs))), stream());
    per_head_gemm(att, false, v_.data(), false, y_.data(), t, hs, t, bh);
    heads_to_tokens(out, y_.data(), a, stream());
}

void CudaOps::attention_backward(float* d_qkv, const float* d_out, const float* qkv,
                                 const float* state, const AttentionShape& a,
                                 const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("attention_backward");
    if (a.bf16) {
        const int64_t n = a.batch * a.seq, c = a.heads * a.head_size;
        const auto* o = reinterpret_cast<const __nv_bfloat16*>(state + flash_output_offset(a));
        const auto* qkv_bf16 = reinterpret_cast<const __nv_bfloat16*>(state + flash_qkv_offset(a));
        // The projection's dgrad may have written it in BF16.
        if (!take_staged(d_out_staged_for_, d_out, d_out_bf16_.size() == n * c,
                         "attention backward: its d_out")) {
            d_out_bf16_.resize(n * c);
            to_bf16(d_out_bf16_.data(), d_out, n * c, stream());
        }
        // Flash attention's BF16 d_qkv is the QKV layer's dy itself where that layer is BF16.
        __nv_bfloat16* d_qkv_bf16 = staged_dy_bf16(consumer, d_qkv, n * 3 * c);
        if (!d_qkv_bf16) {
            d_qkv_bf16_.resize(n * 3 * c);
            d_qkv_bf16 = d_qkv_bf16_.data();
        }
        flash().backward(a, qkv_bf16, o, d_out_bf16_.data(), state, d_qkv_bf16, stream());
        if (d_qkv_bf16 == d_qkv_bf16_.data()) from_bf16(d_qkv, d_qkv_bf16, n * 3 * c, stream());
        return;
    }
    const float* att = state;
    const int64_t bh = a.batch * a.heads, t = a.seq, hs = a.head_size;
    for (Buffer<float>* b : {&q_, &k_, &v_, &y_, &dq_, &dk_, &dv_}) b->resize(bh * t * hs);
    scores_.resize(bh * t * t);
    split_heads(q_.data(), k_.data(), v_.data(), qkv, a, stream());
    tokens_to_heads(y_.data(), d_out, a, stream()); // y_ holds dy
    // d_att = dy · vᵀ (in scores_); dv = attᵀ · dy
    per_head_gemm(y_.data(), false, v_.data(), true, scores_.data(), t, t, hs, bh);
    per_head_gemm(att, true, y_.data(), false, dv_.data(), t, hs, t, bh);
    // d_scores (in place) through the softmax and the 1/√HS; dq = dS · k, dk = dSᵀ · q
    causal_softmax_backward(scores_.data(), scores_.data(), att, bh * t, t,
                            float(1.0 / std::sqrt(double(hs))), stream());
    per_head_gemm(scores_.data(), false, k_.data(), false, dq_.data(), t, hs, t, bh);
    per_head_gemm(scores_.data(), true, q_.data(), false, dk_.data(), t, hs, t, bh);
    merge_heads(d_qkv, dq_.data(), dk_.data(), dv_.data(), a, stream());
}

void CudaOps::rope_forward(float* out, const float* qkv, const AttentionShape& a, double base) {
    const auto timed = profiler_.scope("rope_forward");
    cuda::rope_forward(out, qkv, a, base, stream());
}

void CudaOps::rope_backward(float* d_qkv, const float* d_out, const AttentionShape& a, double base,
                            const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("rope_backward");
    const int64_t count = a.batch * a.seq * 3 * a.heads * a.head_size;
    write_to(staged_dy_bf16(consumer, d_qkv, count), d_qkv,
             [&](auto* dst) { cuda::rope_backward(dst, d_out, a, base, stream()); });
}

void CudaOps::gelu_forward(float* out, const float* x, int64_t n, const LinearPrecision* producer,
                           const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("gelu_forward");
    if (computed_by_consumer(consumer, out, n, packs_bf16(producer),
                             {ElementwiseSource::Op::gelu, bf16_bits(x), nullptr}))
        return;
    __nv_bfloat16* operand = staged_bf16(consumer, out, n);
    read_as_stored(x, packs_bf16(producer), [&](const auto* in) {
        write_to(operand, out, [&](auto* dst) { cuda::gelu_forward(dst, in, n, stream()); });
    });
}

void CudaOps::gelu_backward(float* d_x, const float* d_out, const float* x, int64_t n,
                            const LinearPrecision* producer, const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("gelu_backward");
    if (dy_computed_by(producer, d_x, n, packs_bf16(producer) && packs_bf16(consumer),
                       {ElementwiseSource::Op::gelu_backward, bf16_bits(x), bf16_bits(d_out)}))
        return;
    __nv_bfloat16* dy = staged_dy_bf16(producer, d_x, n);
    read_as_stored(x, packs_bf16(producer), [&](const auto* xs) {
        read_as_stored(d_out, packs_bf16(consumer), [&](const auto* ds) {
            write_to(dy, d_x, [&](auto* dst) { cuda::gelu_backward(dst, ds, xs, n, stream()); });
        });
    });
}

void CudaOps::swiglu_forward(float* out, const float* x, int64_t n, int64_t h,
                             const LinearPrecision* producer, const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("swiglu_forward");
    if (computed_by_consumer(consumer, out, n * h, packs_bf16(producer),
                             {ElementwiseSource::Op::swiglu, bf16_bits(x), nullptr}))
        return;
    __nv_bfloat16* operand = staged_bf16(consumer, out, n * h);
    read_as_stored(x, packs_bf16(producer), [&](const auto* in) {
        write_to(operand, out, [&](auto* dst) { cuda::swiglu_forward(dst, in, n, h, stream()); });
    });
}

void CudaOps::swiglu_backward(float* d_x, const float* d_out, const float* x, int64_t n, int64_t h,
                              const LinearPrecision* producer, const LinearPrecision* consumer) {
    const auto timed = profiler_.scope("swiglu_backward");
    if (dy_computed_by(producer, d_x, n * 2 * h, packs_bf16(producer) && packs_bf16(consumer),
                       {ElementwiseSource::Op::swiglu_backward, bf16_bits(x), bf16_bits(d_out)}))
        return;
    __nv_bfloat16* dy = staged_dy_bf16(producer, d_x, n * 2 * h);
    read_as_stored(x, packs_bf16(producer), [&](const auto* xs) {
        read_as_stored(d_out, packs_bf16(consumer), [&](const auto* ds) {
            write_to(dy, d_x,
                     [&](auto* dst) { cuda::swiglu_backward(dst, ds, xs, n, h, stream()); });
        });
    });
}

void CudaOps::softmax_xent(float* losses, float* d_logits, const float* logits,
                           const int32_t* targets, float d_loss, int64_t n, int64_t v,
                           const LinearPrecision* head) {
    const auto timed = profiler_.scope("softmax_xent");
    // A BF16 head's logits are packed; its BF16 dy takes their place where d_logits is their
    // buffer (each row is read whole before it is written).
    const bool packed = packs_bf16(head);
    __nv_bfloat16* dy = staged_dy_bf16(
        head, d_logits, n * v,
        packed && d_logits == logits ? reinterpret_cast<__nv_bfloat16*>(d_logits) : nullptr);
    // An FP8 head (no policy makes one) packs its logits but reads an FP32 dy, wider than they.
    if (packed && !dy && d_logits == logits)
        throw Error("softmax_xent: an FP8 head's packed logits cannot become its FP32 dy in place");
    read_as_stored(logits, packed, [&](const auto* z) {
        write_to(dy, d_logits, [&](auto* dst) {
            cuda::softmax_xent(losses, dst, z, targets, d_loss, n, v, stream());
        });
    });
}

void CudaOps::scale(float* x, double s, int64_t n) {
    const auto timed = profiler_.scope("scale");
    cuda::scale(x, s, n, stream());
}

const AdamWChunk* CudaOps::adamw_chunks(const std::vector<TensorSpan>& spans) {
    auto same = [](const TensorSpan& x, const TensorSpan& y) {
        return x.offset == y.offset && x.numel == y.numel && x.decay == y.decay;
    };
    if (!std::equal(spans.begin(), spans.end(), chunk_spans_.begin(), chunk_spans_.end(), same)) {
        std::vector<AdamWChunk> chunks;
        for (size_t j = 0; j < spans.size(); ++j) {
            const TensorSpan& s = spans[j];
            for (int64_t at = s.offset; at < s.offset + s.numel; at += adamw_chunk)
                chunks.push_back({at, std::min(at + adamw_chunk, s.offset + s.numel), int32_t(j),
                                  s.decay ? 1 : 0});
        }
        chunks_.upload(chunks.data(), int64_t(chunks.size()));
        chunk_spans_ = spans;
        norm_partials_.resize(std::max<int64_t>(adamw_norm_blocks, chunks_.size()));
        span_amax_.resize(3 * int64_t(spans.size()));
    }
    return chunks_.data();
}

void CudaOps::adamw_step(float* w, const float* g, MomentStorage m, MomentStorage v,
                         const std::vector<TensorSpan>& spans, const AdamWHyper* h, double max_norm,
                         double* norm) {
    const auto timed = profiler_.scope("adamw_step");
    const AdamWChunk* chunks = adamw_chunks(spans);
    int64_t total = 0;
    for (const TensorSpan& s : spans) total = std::max(total, s.offset + s.numel);
    cuda::adamw_step(w, g, m, v, chunks, chunks_.size(), total, h, max_norm, norm,
                     norm_partials_.data(), stream());
}

void CudaOps::adamw_step_scaled(float* w, float* g, const ScaledAdamWState& s,
                                const std::vector<TensorSpan>& spans, const AdamWHyper* h,
                                double max_norm, double* norm) {
    const auto timed = profiler_.scope("adamw_step");
    const AdamWChunk* chunks = adamw_chunks(spans);
    cuda::adamw_step_scaled(w, g, s, chunks, chunks_.size(), int64_t(spans.size()), h, max_norm,
                            norm, norm_partials_.data(), span_amax_.data(), stream());
}

void CudaOps::advance_weight_bounds(double* bounds, int64_t count, const AdamWHyper* h) {
    const auto timed = profiler_.scope("advance_weight_bounds");
    cuda::advance_weight_bounds(bounds, count, h, stream());
}

void CudaOps::store_scaled(const ScaledTensors& dst, const float* x,
                           const std::vector<TensorSpan>& spans) {
    const AdamWChunk* chunks = adamw_chunks(spans);
    cuda::store_scaled(dst, x, chunks, chunks_.size(), int64_t(spans.size()), span_amax_.data(),
                       stream());
}

void CudaOps::load_scaled(float* x, const ScaledTensors& src,
                          const std::vector<TensorSpan>& spans) {
    cuda::load_scaled(x, src, adamw_chunks(spans), chunks_.size(), stream());
}

} // namespace octet::cuda
