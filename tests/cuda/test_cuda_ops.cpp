// The CUDA backend (cuda/cuda_ops.h) against the CPU oracle: every op on the same fresh random
// inputs, the GPU in FP32 and the reference CpuOps<double>; gradients start from random values so
// the accumulation (+=) is checked too. Measure: relative Frobenius error ‖gpu − ref‖ / ‖ref‖,
// NaN never passes. Thresholds: 2e-6 for elementwise ops, 1e-5 for reductions over a row
// (norms, softmax, cross-entropy) and strict-FP32 GEMMs (attention, exact linear layers), 1e-2
// for BF16 flash attention, 5e-3 for chains of BF16 layers and elementwise ops against the CPU's
// emulation (1e-3 for their losses), 1e-4 for the whole model in fp32 and 1e-2 in bf16. Skips
// without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/cpu_ops.h"
#include "cuda/check.h"
#include "cuda/cuda_ops.h"
#include "model/gpt.h"
#include "numerics/formats.h"
#include "ops/linear_precision.h"
#include "optim/adamw.h"
#include "recipe/recipe.h"
#include "tests/harness/both_backends.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/gpu.h"
#include "tests/harness/tiny_training.h"
#include "train/checkpoint.h"

namespace octet {
namespace {

using Host = std::vector<double>;

// The layers that take BF16 operands from the ops that write their x and dy: a BF16 layer, and
// FP8 ones whose recipe quantizes BF16 sources (block-wise, MX, MOSS:
// LinearPrecision::fp8_bf16_sources()).
const char* const bf16_consumers[] = {"bf16", "blockwise", "mxfp8", "moss"};

std::unique_ptr<LinearPrecision> consumer_layer(const std::string& spec) {
    return spec == "bf16" ? LinearPrecision::bf16() : LinearPrecision::fp8(*make_recipe(spec));
}

class CudaOpsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        OCTET_SKIP_WITHOUT_GPU();
        seed_ = testing::fresh_seed();
        rng_ = Rng(seed_);
        gpu_ = std::make_unique<cuda::CudaOps>();
    }

    Host random(int64_t n, double scale = 1.0) {
        Host x(static_cast<size_t>(n));
        for (double& v : x) v = rng_.normal() * scale;
        return x;
    }
    Buffer<float> device(const Host& x) {
        const std::vector<float> f(x.begin(), x.end());
        Buffer<float> b(gpu_->memory());
        b.upload(f.data(), int64_t(f.size()));
        return b;
    }
    Buffer<int32_t> device(const std::vector<int32_t>& x) {
        Buffer<int32_t> b(gpu_->memory());
        b.upload(x.data(), int64_t(x.size()));
        return b;
    }
    // A gradient buffer the op must write, not read: NaN, which expect_close refuses.
    Buffer<float> poisoned(size_t n) { return device(Host(n, std::nan(""))); }
    static Host host(const Buffer<float>& b) {
        const std::vector<float> f = b.download();
        return Host(f.begin(), f.end());
    }
    // x rounded to BF16, and the same packed two to a float, as a BF16 layer writes it for an
    // elementwise op (Ops::packs_bf16()).
    static Host rounded_bf16(Host x) {
        for (double& v : x) v = round_to_format(float(v), Format::bf16, Overflow::ieee);
        return x;
    }
    Buffer<float> packed_bf16(const Host& x) {
        std::vector<uint16_t> codes;
        for (double v : rounded_bf16(x))
            codes.push_back(uint16_t(std::bit_cast<uint32_t>(float(v)) >> 16));
        codes.resize((codes.size() + 1) / 2 * 2);
        std::vector<float> words(codes.size() / 2);
        std::memcpy(words.data(), codes.data(), codes.size() * sizeof(uint16_t));
        Buffer<float> b(gpu_->memory());
        b.upload(words.data(), int64_t(words.size()));
        return b;
    }
    // The reference rounded to float first, as the GPU's inputs were.
    static Host as_float(Host x) {
        for (double& v : x) v = double(float(v));
        return x;
    }
    void expect_close(const Host& ref, const Buffer<float>& got, double tol, const char* what) {
        const Host g = host(got);
        ASSERT_EQ(ref.size(), g.size()) << what;
        double err = 0, norm = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
            ASSERT_FALSE(std::isnan(g[i]))
                << what << " [" << i << "] " << testing::seed_note(seed_);
            err += (g[i] - ref[i]) * (g[i] - ref[i]);
            norm += ref[i] * ref[i];
        }
        EXPECT_LE(std::sqrt(err / norm), tol) << what << " " << testing::seed_note(seed_);
    }

    void check_attention(const AttentionShape& a, double tol);

    uint64_t seed_ = 0;
    Rng rng_{1};
    CpuOps<double> cpu_;
    std::unique_ptr<cuda::CudaOps> gpu_;
};

TEST_F(CudaOpsTest, Embedding) {
    const int64_t B = 3, T = 7, C = 40, V = 17;
    std::vector<int32_t> tokens(static_cast<size_t>(B * T));
    for (int32_t& t : tokens) t = int32_t(rng_.next_u64() % V); // repeats: atomics collide
    for (bool positions : {true, false}) {
        Host wte = as_float(random(V * C)), wpe = as_float(random(T * C)),
             out(static_cast<size_t>(B * T * C));
        Host d_out = as_float(random(B * T * C)), d_wte = as_float(random(V * C)),
             d_wpe = as_float(random(T * C));
        Buffer<float> g_wte = device(wte), g_wpe = device(wpe), g_out = device(out),
                      g_dout = device(d_out), g_dwte = device(d_wte), g_dwpe = device(d_wpe);
        Buffer<int32_t> g_tokens = device(tokens);
        cpu_.embedding_forward(out.data(), tokens.data(), wte.data(),
                               positions ? wpe.data() : nullptr, B, T, C);
        gpu_->embedding_forward(g_out.data(), g_tokens.data(), g_wte.data(),
                                positions ? g_wpe.data() : nullptr, B, T, C);
        expect_close(out, g_out, 2e-6, "embedding forward");
        cpu_.embedding_backward(d_wte.data(), positions ? d_wpe.data() : nullptr, d_out.data(),
                                tokens.data(), B, T, C);
        gpu_->embedding_backward(g_dwte.data(), positions ? g_dwpe.data() : nullptr, g_dout.data(),
                                 g_tokens.data(), B, T, C);
        expect_close(d_wte, g_dwte, 2e-6, "d_wte");
        expect_close(d_wpe, g_dwpe, 2e-6, "d_wpe");
    }
}

TEST_F(CudaOpsTest, LayerNormAndRmsNorm) {
    // C not a multiple of the warp; then a row of 16 registers per thread, and slices of
    // several rows in the backward.
    for (auto [N, C] : {std::pair<int64_t, int64_t>{45, 200}, {1100, 4100}}) {
        SCOPED_TRACE(std::to_string(N) + "x" + std::to_string(C));
        Host x = as_float(random(N * C, 3.0)), w = as_float(random(C)), b = as_float(random(C));
        for (double& v : x) v += 2.0; // a mean to subtract
        Host out(static_cast<size_t>(N * C)), mean(static_cast<size_t>(N)),
            rstd(static_cast<size_t>(N));
        Buffer<float> gx = device(x), gw = device(w), gb = device(b), gout = device(out),
                      gmean = device(mean), grstd = device(rstd);
        cpu_.layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(),
                               N, C, 1e-5, nullptr);
        gpu_->layernorm_forward(gout.data(), gmean.data(), grstd.data(), gx.data(), gw.data(),
                                gb.data(), N, C, 1e-5, nullptr);
        expect_close(out, gout, 1e-5, "layernorm out");
        expect_close(mean, gmean, 1e-5, "layernorm mean");
        expect_close(rstd, grstd, 1e-5, "layernorm rstd");
        Host d_out = as_float(random(N * C)), d_x = as_float(random(N * C)),
             d_w = as_float(random(C)), d_b = as_float(random(C));
        Buffer<float> gdout = device(d_out), gdx = device(d_x), gdw = device(d_w),
                      gdb = device(d_b);
        cpu_.layernorm_backward(d_x.data(), d_w.data(), d_b.data(), d_out.data(), x.data(),
                                w.data(), mean.data(), rstd.data(), N, C, nullptr, nullptr);
        gpu_->layernorm_backward(gdx.data(), gdw.data(), gdb.data(), gdout.data(), gx.data(),
                                 gw.data(), gmean.data(), grstd.data(), N, C, nullptr, nullptr);
        expect_close(d_x, gdx, 1e-5, "layernorm d_x");
        expect_close(d_w, gdw, 1e-5, "layernorm d_w");
        expect_close(d_b, gdb, 1e-5, "layernorm d_b");

        cpu_.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5, nullptr);
        gpu_->rmsnorm_forward(gout.data(), grstd.data(), gx.data(), gw.data(), N, C, 1e-5, nullptr);
        expect_close(out, gout, 1e-5, "rmsnorm out");
        expect_close(rstd, grstd, 1e-5, "rmsnorm rstd");
        cpu_.rmsnorm_backward(d_x.data(), d_w.data(), d_out.data(), x.data(), w.data(), rstd.data(),
                              N, C, nullptr, nullptr);
        gpu_->rmsnorm_backward(gdx.data(), gdw.data(), gdout.data(), gx.data(), gw.data(),
                               grstd.data(), N, C, nullptr, nullptr);
        expect_close(d_x, gdx, 1e-5, "rmsnorm d_x");
        expect_close(d_w, gdw, 1e-5, "rmsnorm d_w");
    }
    // Rows wider than the kernels hold are refused before anything is launched.
    Buffer<float> row(gpu_->memory(), 16385), stat(gpu_->memory(), 1);
    EXPECT_THROW(gpu_->layernorm_forward(row.data(), stat.data(), stat.data(), row.data(),
                                         row.data(), row.data(), 1, 16385, 1e-5, nullptr),
                 Error);
}

// Exact (strict FP32) linear layers with odd shapes and bias; d_x written, d_w and d_b added to.
// The forward adds a residual stream (out of place: the GEMM's C).
TEST_F(CudaOpsTest, ExactLinear) {
    const int64_t N = 37, K = 24, M = 41;
    Host x = as_float(random(N * K)), w = as_float(random(M * K)), b = as_float(random(M)),
         r = as_float(random(N * M));
    Host y(static_cast<size_t>(N * M)),
        d_y = as_float(random(N * M)), d_x = as_float(random(N * K)), d_w = as_float(random(M * K)),
        d_b = as_float(random(M));
    Buffer<float> gx = device(x), gw = device(w), gb = device(b), gy = poisoned(y.size()),
                  gdy = device(d_y), gdx = poisoned(d_x.size()), gdw = device(d_w),
                  gdb = device(d_b), gr = device(r);
    cpu_.linear_forward(
        {y.data(), x.data(), w.data(), b.data(), N, K, M, nullptr, nullptr, r.data()});
    gpu_->linear_forward(
        {gy.data(), gx.data(), gw.data(), gb.data(), N, K, M, nullptr, nullptr, gr.data()});
    expect_close(y, gy, 1e-5, "linear forward");
    cpu_.linear_backward(
        {d_x.data(), d_w.data(), d_b.data(), d_y.data(), x.data(), w.data(), N, K, M, nullptr});
    gpu_->linear_backward(
        {gdx.data(), gdw.data(), gdb.data(), gdy.data(), gx.data(), gw.data(), N, K, M, nullptr});
    expect_close(d_x, gdx, 1e-5, "linear d_x");
    expect_close(d_w, gdw, 1e-5, "linear d_w");
    expect_close(d_b, gdb, 1e-5, "linear d_b");
}

// BF16 operands: the CPU rounds the same operands to BF16, so only the summation order differs.
// The GPU's backward gets no input, which is overwritten: it reads what its forward kept. The bias
// gradient sums the rounded dy four columns to a thread (M a multiple of 4) or one (M odd). The
// forward adds a residual stream.
TEST_F(CudaOpsTest, Bf16Linear) {
    for (const int64_t M : {80, 75}) {
        SCOPED_TRACE("M " + std::to_string(M));
        const int64_t N = 300, K = 96;
        const Host x = random(N * K), w = random(M * K), b = random(M), d_y = random(N * M),
                   r = random(N * M);
        const auto floats = [](const Host& h) { return std::vector<float>(h.begin(), h.end()); };
        std::vector<float> xf = floats(x), wf = floats(w), bf = floats(b), dyf = floats(d_y),
                           rf = floats(r);
        std::vector<float> y(static_cast<size_t>(N * M)), d_x(size_t(N * K)),
            d_w = floats(random(M * K)), d_b = floats(random(M));
        Buffer<float> gx = device(x), gw = device(w), gb = device(b), gdy = device(d_y),
                      gy = poisoned(y.size()), gdx = poisoned(d_x.size()),
                      gdw = device(Host(d_w.begin(), d_w.end())),
                      gdb = device(Host(d_b.begin(), d_b.end())), gr = device(r);
        CpuOps<float> cpu32;
        auto cpu_precision = LinearPrecision::bf16();
        cpu32.linear_forward({y.data(), xf.data(), wf.data(), bf.data(), N, K, M,
                              cpu_precision.get(), nullptr, rf.data()});
        cpu32.linear_backward({d_x.data(), d_w.data(), d_b.data(), dyf.data(), xf.data(), wf.data(),
                               N, K, M, cpu_precision.get()});
        auto gpu_precision = LinearPrecision::bf16();
        gpu_->linear_forward({gy.data(), gx.data(), gw.data(), gb.data(), N, K, M,
                              gpu_precision.get(), nullptr, gr.data()});
        const std::vector<float> overwritten(x.size(), std::nanf(""));
        gx.upload(overwritten.data(), int64_t(x.size()));
        gpu_->linear_backward({gdx.data(), gdw.data(), gdb.data(), gdy.data(), nullptr, gw.data(),
                               N, K, M, gpu_precision.get()});
        expect_close(Host(y.begin(), y.end()), gy, 1e-5, "bf16 forward");
        expect_close(Host(d_x.begin(), d_x.end()), gdx, 1e-5, "bf16 d_x");
        expect_close(Host(d_w.begin(), d_w.end()), gdw, 1e-5, "bf16 d_w");
        expect_close(Host(d_b.begin(), d_b.end()), gdb, 1e-6, "bf16 d_b");
    }
}

// An empty batch contributes nothing, under every precision, as on the CPU: a written dW is zero,
// an accumulated one and the bias gradient keep what they held.
TEST_F(CudaOpsTest, LinearBackwardOfAnEmptyBatch) {
    const int64_t K = 96, M = 80;
    const Host held = as_float(random(M * K)), bias_held = as_float(random(M));
    for (const std::string spec : {"exact", "bf16", "blockwise", "moss"}) {
        for (bool add : {false, true}) {
            SCOPED_TRACE(spec + (add ? ", accumulated" : ", written"));
            const auto precision = spec == "exact" ? nullptr : consumer_layer(spec);
            Buffer<float> gdw = device(held), gdb = device(bias_held), gw = device(random(M * K));
            LinearBackwardArgs<float> args{nullptr, gdw.data(),     gdb.data(), nullptr,
                                           nullptr, gw.data(),      0,          K,
                                           M,       precision.get()};
            args.add_to_d_weight = add;
            gpu_->linear_backward(args);
            EXPECT_EQ(host(gdw), add ? held : Host(size_t(M * K), 0.0));
            EXPECT_EQ(host(gdb), bias_held);
        }
    }
}

// Attention forward and backward on both backends; with the exact kernel the state is the
// probabilities, compared too.
void CudaOpsTest::check_attention(const AttentionShape& a, double tol) {
    const int64_t n = a.batch * a.seq, c = a.heads * a.head_size;
    Host qkv = as_float(random(n * 3 * c)), out(static_cast<size_t>(n * c)),
         att(static_cast<size_t>(a.batch * a.heads * a.seq * a.seq));
    Buffer<float> gqkv = device(qkv), gout = device(out),
                  gstate = device(Host(static_cast<size_t>(gpu_->attention_state_size(a))));
    cpu_.attention_forward(out.data(), att.data(), qkv.data(), a, nullptr);
    gpu_->attention_forward(gout.data(), gstate.data(), gqkv.data(), a, nullptr);
    expect_close(out, gout, tol, "attention out");
    if (!a.bf16) expect_close(att, gstate, tol, "attention probabilities");
    Host d_out = as_float(random(n * c)), d_qkv = as_float(random(n * 3 * c));
    Buffer<float> gdout = device(d_out), gdqkv = poisoned(d_qkv.size());
    cpu_.attention_backward(d_qkv.data(), d_out.data(), qkv.data(), att.data(), a, nullptr);
    // Flash attention keeps its own qkv: the backward is given none, and its buffer is NaN.
    const bool keeps = gpu_->attention_keeps_input(a);
    EXPECT_EQ(keeps, a.bf16);
    if (keeps) gqkv = poisoned(qkv.size());
    gpu_->attention_backward(gdqkv.data(), gdout.data(), keeps ? nullptr : gqkv.data(),
                             gstate.data(), a, nullptr);
    expect_close(d_qkv, gdqkv, tol, "attention d_qkv");
}

TEST_F(CudaOpsTest, ExactAttention) {
    check_attention({2, 37, 3, 16}, 1e-5);
}

// Flash attention (cuDNN, BF16 q, k, v and output, FP32 softmax statistics) against the exact
// CPU attention: BF16 rounding bounds the agreement (1e-2). It keeps no T x T probabilities (its
// state grows with T), and the sequence is not a multiple of the kernel's tiles.
TEST_F(CudaOpsTest, FlashAttentionInBf16) {
    const AttentionShape a{2, 100, 4, 64, true}, twice{2, 200, 4, 64, true};
    EXPECT_LE(gpu_->attention_state_size(twice), 2 * gpu_->attention_state_size(a) + 8);
    check_attention(a, 1e-2);
}

TEST_F(CudaOpsTest, Rope) {
    const AttentionShape a{2, 37, 3, 16};
    const int64_t n = a.batch * a.seq * 3 * a.heads * a.head_size;
    Host qkv = as_float(random(n)), rot(static_cast<size_t>(n));
    Buffer<float> gqkv = device(qkv), grot = device(rot);
    cpu_.rope_forward(rot.data(), qkv.data(), a, 10000.0);
    gpu_->rope_forward(grot.data(), gqkv.data(), a, 10000.0);
    expect_close(rot, grot, 2e-6, "rope forward");
    Host d_rot = as_float(random(n)), d_qkv = as_float(random(n));
    Buffer<float> gdrot = device(d_rot), gdqkv = poisoned(d_qkv.size());
    cpu_.rope_backward(d_qkv.data(), d_rot.data(), a, 10000.0, nullptr);
    gpu_->rope_backward(gdqkv.data(), gdrot.data(), a, 10000.0, nullptr);
    expect_close(d_qkv, gdqkv, 2e-6, "rope backward");
}

TEST_F(CudaOpsTest, ActivationsAndScale) {
    const int64_t n = 33, h = 70;
    Host x = as_float(random(n * 2 * h, 2.0)), out(static_cast<size_t>(n * 2 * h)),
         d_out = as_float(random(n * 2 * h)), d_x = as_float(random(n * 2 * h));
    Buffer<float> gx = device(x), gout = device(out), gdout = device(d_out),
                  gdx = poisoned(d_x.size());
    cpu_.gelu_forward(out.data(), x.data(), n * 2 * h, nullptr, nullptr);
    gpu_->gelu_forward(gout.data(), gx.data(), n * 2 * h, nullptr, nullptr);
    expect_close(out, gout, 2e-6, "gelu forward");
    cpu_.gelu_backward(d_x.data(), d_out.data(), x.data(), n * 2 * h, nullptr, nullptr);
    gpu_->gelu_backward(gdx.data(), gdout.data(), gx.data(), n * 2 * h, nullptr, nullptr);
    expect_close(d_x, gdx, 2e-6, "gelu backward");

    Host s(static_cast<size_t>(n * h));
    Buffer<float> gs = device(s);
    cpu_.swiglu_forward(s.data(), x.data(), n, h, nullptr, nullptr);
    gpu_->swiglu_forward(gs.data(), gx.data(), n, h, nullptr, nullptr);
    expect_close(s, gs, 2e-6, "swiglu forward");
    Host d_s = as_float(random(n * h));
    Buffer<float> gds = device(d_s);
    gdx = poisoned(d_x.size());
    cpu_.swiglu_backward(d_x.data(), d_s.data(), x.data(), n, h, nullptr, nullptr);
    gpu_->swiglu_backward(gdx.data(), gds.data(), gx.data(), n, h, nullptr, nullptr);
    expect_close(d_x, gdx, 2e-6, "swiglu backward");

    cpu_.scale(out.data(), 0.3, n * 2 * h);
    gpu_->scale(gout.data(), 0.3, n * 2 * h);
    expect_close(out, gout, 2e-6, "scale");

    // Counts that leave a ragged tail after the groups of four, and inputs off 16-byte alignment.
    for (int64_t offset : {0, 1}) {
        SCOPED_TRACE("offset " + std::to_string(offset));
        const int64_t count = n * 2 * h - 1;
        Host ref(static_cast<size_t>(count)), grad(static_cast<size_t>(count));
        cpu_.gelu_forward(ref.data(), x.data() + offset, count, nullptr, nullptr);
        cpu_.gelu_backward(grad.data(), d_out.data() + offset, x.data() + offset, count, nullptr,
                           nullptr);
        const Host poison(static_cast<size_t>(count), std::nan(""));
        Buffer<float> g_ref = device(poison), g_grad = device(poison);
        gpu_->gelu_forward(g_ref.data(), gx.data() + offset, count, nullptr, nullptr);
        gpu_->gelu_backward(g_grad.data(), gdout.data() + offset, gx.data() + offset, count,
                            nullptr, nullptr);
        expect_close(ref, g_ref, 2e-6, "gelu forward");
        expect_close(grad, g_grad, 2e-6, "gelu backward");
    }
}

// Norms, activations and attention feeding a BF16 linear layer, or a block-wise FP8 one (ops.h's
// `consumer`), write its BF16 operand instead of their FP32 output: the layer's forward and weight
// gradient are bit for bit those of the unfused ops, and the FP32 output stays as it was (NaN
// here). An activation of BF16 inputs (its `producer` packs them) between FP8 layers writes
// nothing: the consumer computes its output as it quantizes it, or, where rows are not whole
// quads (the "odd" widths), writes it in BF16 first. A layer given another input than the one its
// operand was written (or left) for refuses it.
TEST_F(CudaOpsTest, ProducersWriteTheBf16OperandOfTheirConsumer) {
    const int64_t n = 2 * 67, c = 64, h = 96, m = 40; // attention: batch 2, 67 tokens, one head
    const AttentionShape attention{2, 67, 1, 64, true};
    const Host x = random(n * 2 * h), w = random(std::max(c, 2 * h)), b = random(c),
               weight = random(m * h);
    Buffer<float> gx = device(x), gw = device(w), gb = device(b), gweight = device(weight),
                  stats = poisoned(2 * size_t(n)),
                  state = poisoned(size_t(gpu_->attention_state_size(attention))),
                  gx_rounded = device(rounded_bf16(x)), gx_packed = packed_bf16(x);
    // The activations' BF16 x: packed as an FP8 layer (`packer`) wrote it where the consumer
    // is given, else its values in FP32.
    const auto packer = consumer_layer("blockwise");
    auto bf16_x = [&](const LinearPrecision* p) {
        return p ? gx_packed.data() : gx_rounded.data();
    };
    auto x_producer = [&](const LinearPrecision* p) { return p ? packer.get() : nullptr; };
    struct Producer {
        const char* name;
        int64_t k; // the consumer's input width
        std::function<void(float* out, const LinearPrecision* consumer)> run;
    };
    const std::vector<Producer> producers = {
        {"layernorm", c,
         [&](float* out, const LinearPrecision* p) {
             gpu_->layernorm_forward(out, stats.data(), stats.data() + n, gx.data(), gw.data(),
                                     gb.data(), n, c, 1e-5, p);
         }},
        {"rmsnorm", c,
         [&](float* out, const LinearPrecision* p) {
             gpu_->rmsnorm_forward(out, stats.data(), gx.data(), gw.data(), n, c, 1e-5, p);
         }},
        {"gelu", h,
         [&](float* out, const LinearPrecision* p) {
             gpu_->gelu_forward(out, gx.data(), n * h, nullptr, p);
         }},
        {"swiglu", h,
         [&](float* out, const LinearPrecision* p) {
             gpu_->swiglu_forward(out, gx.data(), n, h, nullptr, p);
         }},
        {"gelu of BF16", h,
         [&](float* out, const LinearPrecision* p) {
             gpu_->gelu_forward(out, bf16_x(p), n * h, x_producer(p), p);
         }},
        {"gelu of BF16, odd width", h - 1,
         [&](float* out, const LinearPrecision* p) {
             gpu_->gelu_forward(out, bf16_x(p), n * (h - 1), x_producer(p), p);
         }},
        {"swiglu of BF16", h,
         [&](float* out, const LinearPrecision* p) {
             gpu_->swiglu_forward(out, bf16_x(p), n, h, x_producer(p), p);
         }},
        {"swiglu of BF16, odd width", h - 3,
         [&](float* out, const LinearPrecision* p) {
             gpu_->swiglu_forward(out, bf16_x(p), n, h - 3, x_producer(p), p);
         }},
        {"attention", c,
         [&](float* out, const LinearPrecision* p) {
             gpu_->attention_forward(out, state.data(), gx.data(), attention, p);
         }},
    };
    for (const std::string spec : bf16_consumers)
        for (const Producer& producer : producers) {
            SCOPED_TRACE(spec + " " + producer.name);
            const int64_t k = producer.k;
            std::vector<Host> outputs, weight_grads;
            for (const bool staged : {false, true}) {
                auto precision = consumer_layer(spec);
                Buffer<float> in = poisoned(size_t(n * k)), y = poisoned(size_t(n * m)),
                              d_w = device(Host(size_t(m * k), 0.0)), d_y = device(as_float(x));
                producer.run(in.data(), staged ? precision->as_consumer() : nullptr);
                if (staged) {
                    for (double v : host(in))
                        ASSERT_TRUE(std::isnan(v)) << "the FP32 output was written";
                    Buffer<float> other = poisoned(size_t(n * k));
                    EXPECT_THROW(gpu_->linear_forward({y.data(), other.data(), gweight.data(),
                                                       nullptr, n, k, m, precision.get()}),
                                 Error);
                    producer.run(in.data(), precision->as_consumer());
                }
                gpu_->linear_forward(
                    {y.data(), in.data(), gweight.data(), nullptr, n, k, m, precision.get()});
                gpu_->linear_backward({nullptr, d_w.data(), nullptr, d_y.data(), nullptr,
                                       gweight.data(), n, k, m, precision.get()});
                outputs.push_back(host(y));
                weight_grads.push_back(host(d_w));
            }
            EXPECT_EQ(outputs[0], outputs[1]);
            EXPECT_EQ(weight_grads[0], weight_grads[1]);
            for (double v : outputs[1]) ASSERT_FALSE(std::isnan(v));
        }
}

// Backward ops feeding the backward of a BF16 linear layer, or of a block-wise FP8 one, write its
// BF16 dy instead of their FP32 gradient: the layer's d_x, d_W and d_b are bit for bit those of
// the unfused ops, and the FP32
// gradient stays as it was (NaN here), but for the norms, which write it too (the residual
// stream's). A layer given another dy than the one its operand was written for refuses it. The
// activations' d_x goes to the layer that wrote their x (`producer`), so theirs reads x packed in
// BF16, the unfused one the same values in FP32. (The loss's dy: the test after this one.)
TEST_F(CudaOpsTest, ProducersWriteTheBf16GradientOfTheirConsumer) {
    const int64_t n = 2 * 67, c = 64, h = 96, k = 24; // k: the consumer's input width
    const AttentionShape attention{2, 67, 1, 64, true};
    const Host x = random(n * 3 * c), d_out = random(n * 3 * c), w = random(c), b = random(c),
               residual = random(n * c);
    Buffer<float> gx = device(x), gd_out = device(d_out), gw = device(w), gb = device(b),
                  stats = poisoned(2 * size_t(n)), scratch = poisoned(size_t(n * 3 * c)),
                  state = poisoned(size_t(gpu_->attention_state_size(attention))),
                  gx_rounded = device(rounded_bf16(x)), gx_packed = packed_bf16(x),
                  gd_out_packed = packed_bf16(d_out);
    // The activations' x as a BF16 layer wrote it for them, or its values in FP32.
    auto activation_x = [&](const LinearPrecision* p) {
        return p ? gx_packed.data() : gx_rounded.data();
    };
    // The activations' d_out as their FP8 consumer's dgrad writes it for them, packed in BF16:
    // between two FP8 layers, their d_x is left to the producer to compute as it quantizes its
    // dy, or, where rows are not whole quads (of each half, for SwiGLU: the "odd" widths), to
    // write in BF16 first.
    const auto packer = consumer_layer("blockwise");
    // The forwards whose saved statistics and state the backwards read.
    gpu_->layernorm_forward(scratch.data(), stats.data(), stats.data() + n, gx.data(), gw.data(),
                            gb.data(), n, c, 1e-5, nullptr);
    gpu_->attention_forward(scratch.data(), state.data(), gx.data(), attention, nullptr);
    Buffer<float> rms_stats = poisoned(size_t(n));
    gpu_->rmsnorm_forward(scratch.data(), rms_stats.data(), gx.data(), gw.data(), n, c, 1e-5,
                          nullptr);
    struct Producer {
        const char* name;
        int64_t m;     // the gradient's width: the consumer's output width
        bool residual; // a norm: adds to its gradient, and writes it whatever the consumer
        std::function<void(float* grad, const LinearPrecision* consumer)> run;
    };
    const std::vector<Producer> producers = {
        {"layernorm", c, true,
         [&](float* g, const LinearPrecision* p) {
             Buffer<float> d_w = device(w), d_b = device(b);
             gpu_->layernorm_backward(g, d_w.data(), d_b.data(), gd_out.data(), gx.data(),
                                      gw.data(), stats.data(), stats.data() + n, n, c, nullptr, p);
         }},
        {"rmsnorm", c, true,
         [&](float* g, const LinearPrecision* p) {
             Buffer<float> d_w = device(w);
             gpu_->rmsnorm_backward(g, d_w.data(), gd_out.data(), gx.data(), gw.data(),
                                    rms_stats.data(), n, c, nullptr, p);
         }},
        {"gelu", h, false,
         [&](float* g, const LinearPrecision* p) {
             gpu_->gelu_backward(g, gd_out.data(), activation_x(p), n * h, p, nullptr);
         }},
        {"swiglu", 2 * h, false,
         [&](float* g, const LinearPrecision* p) {
             gpu_->swiglu_backward(g, gd_out.data(), activation_x(p), n, h, p, nullptr);
         }},
        {"gelu of a BF16 d_out", h, false,
         [&](float* g, const LinearPrecision* p) {
             gpu_->gelu_backward(g, gd_out_packed.data(), activation_x(p), n * h, p, packer.get());
         }},
        {"gelu of a BF16 d_out, odd width", h - 1, false,
         [&](float* g, const LinearPrecision* p) {
             gpu_->gelu_backward(g, gd_out_packed.data(), activation_x(p), n * (h - 1), p,
                                 packer.get());
         }},
        {"swiglu of a BF16 d_out", 2 * h, false,
         [&](float* g, const LinearPrecision* p) {
             gpu_->swiglu_backward(g, gd_out_packed.data(), activation_x(p), n, h, p, packer.get());
         }},
        {"swiglu of a BF16 d_out, odd width", 2 * (h - 2), false,
         [&](float* g, const LinearPrecision* p) {
             gpu_->swiglu_backward(g, gd_out_packed.data(), activation_x(p), n, h - 2, p,
                                   packer.get());
         }},
        {"attention", 3 * c, false,
         [&](float* g, const LinearPrecision* p) {
             gpu_->attention_backward(g, gd_out.data(), gx.data(), state.data(), attention, p);
         }},
        {"rope", 3 * c, false,
         [&](float* g, const LinearPrecision* p) {
             gpu_->rope_backward(g, gd_out.data(), attention, 10000.0, p);
         }},
    };
    for (const std::string spec : bf16_consumers)
        for (const Producer& producer : producers) {
            SCOPED_TRACE(spec + " " + producer.name);
            const int64_t m = producer.m;
            const Host in = random(n * k), weight = random(m * k), bias = random(m);
            Buffer<float> gin = device(in), gweight = device(weight), gbias = device(bias);
            std::vector<Host> grads, results;
            for (const bool staged : {false, true}) {
                auto precision = consumer_layer(spec);
                Buffer<float> y = poisoned(size_t(n * m)), d_in = poisoned(size_t(n * k)),
                              d_w = device(Host(size_t(m * k), 0.0)),
                              d_b = device(Host(size_t(m), 0.0)),
                              grad = producer.residual
                                         ? device(Host(residual.begin(), residual.begin() + n * m))
                                         : poisoned(size_t(n * m));
                gpu_->linear_forward(
                    {y.data(), gin.data(), gweight.data(), gbias.data(), n, k, m, precision.get()});
                producer.run(grad.data(), staged ? precision->as_consumer() : nullptr);
                const LinearBackwardArgs<float> backward{
                    d_in.data(),    d_w.data(), d_b.data(), grad.data(), nullptr,
                    gweight.data(), n,          k,          m,           precision.get()};
                if (staged) {
                    if (!producer.residual) {
                        for (double g : host(grad))
                            ASSERT_TRUE(std::isnan(g)) << "the FP32 gradient";
                    }
                    LinearBackwardArgs<float> other = backward;
                    other.d_out = scratch.data();
                    EXPECT_THROW(gpu_->linear_backward(other), Error);
                }
                gpu_->linear_backward(backward);
                if (producer.residual || !staged) grads.push_back(host(grad));
                for (const Buffer<float>* r : {&d_in, &d_w, &d_b}) results.push_back(host(*r));
            }
            if (producer.residual) {
                EXPECT_EQ(grads[0], grads[1]) << "the norm's FP32 d_x";
            }
            for (size_t i = 0; i < 3; ++i) {
                const char* what = i == 0 ? "d_x" : i == 1 ? "d_W" : "d_b";
                EXPECT_EQ(results[i], results[i + 3]) << what;
                for (double r : results[i]) ASSERT_FALSE(std::isnan(r)) << what;
            }
        }
}

// BF16 linear layers feeding flash attention (ops.h's AttentionConsumer) write its BF16 operands
// from their GEMMs: the QKV layer its qkv into the attention's state, the projection's dgrad its
// d_out. Their FP32 outputs stay unwritten (NaN), and attention's output and d_qkv agree with the
// unfused ops' within BF16 rounding (the GEMMs round their FP32 results once either way; the
// algorithm may differ). An attention given another input than the one written for it refuses it.
TEST_F(CudaOpsTest, LinearLayersWriteTheBf16OperandsOfFlashAttention) {
    const AttentionShape shape{2, 67, 2, 32, true};
    const int64_t n = shape.batch * shape.seq, c = shape.heads * shape.head_size, k = 48, m = 40;
    const Host x = random(n * k), qkv_w = random(3 * c * k, 0.2), qkv_b = random(3 * c),
               proj_w = random(m * c), d_y = random(n * m);
    Buffer<float> gx = device(x), gqkv_w = device(qkv_w), gqkv_b = device(qkv_b),
                  gproj_w = device(proj_w), gd_y = device(d_y);
    std::vector<Host> outputs, d_qkvs;
    for (const bool staged : {false, true}) {
        SCOPED_TRACE(staged ? "staged" : "unfused");
        auto qkv_layer = LinearPrecision::bf16(), proj_layer = LinearPrecision::bf16();
        Buffer<float> qkv = poisoned(size_t(n * 3 * c)), out = poisoned(size_t(n * c)),
                      state = poisoned(size_t(gpu_->attention_state_size(shape))),
                      y = poisoned(size_t(n * m)), d_w = device(Host(size_t(m * c), 0.0)),
                      d_attn = poisoned(size_t(n * c)), d_qkv = poisoned(size_t(n * 3 * c));
        const AttentionConsumer<float> forward_consumer{state.data(), shape},
            backward_consumer{nullptr, shape};
        gpu_->linear_forward({qkv.data(), gx.data(), gqkv_w.data(), gqkv_b.data(), n, k, 3 * c,
                              qkv_layer.get(), staged ? &forward_consumer : nullptr});
        if (staged) {
            for (double v : host(qkv)) ASSERT_TRUE(std::isnan(v)) << "the FP32 qkv was written";
            EXPECT_THROW(
                gpu_->attention_forward(out.data(), state.data(), d_qkv.data(), shape, nullptr),
                Error);
            gpu_->linear_forward({qkv.data(), gx.data(), gqkv_w.data(), gqkv_b.data(), n, k, 3 * c,
                                  qkv_layer.get(), &forward_consumer});
        }
        gpu_->attention_forward(out.data(), state.data(), qkv.data(), shape, nullptr);
        gpu_->linear_forward(
            {y.data(), out.data(), gproj_w.data(), nullptr, n, c, m, proj_layer.get()});
        const LinearBackwardArgs<float> proj_backward{d_attn.data(),
                                                      d_w.data(),
                                                      nullptr,
                                                      gd_y.data(),
                                                      nullptr,
                                                      gproj_w.data(),
                                                      n,
                                                      c,
                                                      m,
                                                      proj_layer.get(),
                                                      staged ? &backward_consumer : nullptr};
        gpu_->linear_backward(proj_backward);
        if (staged) {
            for (double v : host(d_attn)) ASSERT_TRUE(std::isnan(v)) << "the FP32 d_out";
            EXPECT_THROW(gpu_->attention_backward(d_qkv.data(), gd_y.data(), nullptr, state.data(),
                                                  shape, nullptr),
                         Error);
            gpu_->linear_backward(proj_backward);
        }
        gpu_->attention_backward(d_qkv.data(), d_attn.data(), nullptr, state.data(), shape,
                                 nullptr);
        outputs.push_back(host(out));
        d_qkvs.push_back(host(d_qkv));
    }
    expect_close(outputs[0], device(outputs[1]), 1e-2, "attention output");
    expect_close(d_qkvs[0], device(d_qkvs[1]), 1e-2, "attention d_qkv");
}

// BF16 layers feeding an elementwise op (ops.h's `producer`) write BF16 packed two to a float,
// in half the buffer: the feed-forward's up projection → GELU or SwiGLU → down projection, whose
// dgrad writes the activation's d_out the same way, and the LM head → the loss, in place, whose
// BF16 d_logits the head's backward reads; a layer after a norm writes the norm's d_out so too
// (its `reader`). Everything the chains return agrees with the CPU, which rounds the same values
// in place, within BF16 rounding (the GEMMs sum in other orders).
TEST_F(CudaOpsTest, Bf16LayersWritePackedOutputsForTheirReaders) {
    const int64_t n = 2 * 67, c = 48, h = 80, v = 1000;
    CpuOps<float> cpu32;
    ASSERT_FALSE(cpu32.packs_bf16(LinearPrecision::bf16().get()));
    ASSERT_TRUE(gpu_->packs_bf16(LinearPrecision::bf16().get()));
    ASSERT_FALSE(gpu_->packs_bf16(LinearPrecision::exact().get()));
    const auto floats = [](const Host& x) { return std::vector<float>(x.begin(), x.end()); };
    const auto to_host = [](const std::vector<float>& x) { return Host(x.begin(), x.end()); };
    const Host x = random(n * c), d_y = random(n * c, 0.1);
    for (const bool swiglu : {false, true}) {
        SCOPED_TRACE(swiglu ? "swiglu" : "gelu");
        const int64_t up_rows = swiglu ? 2 * h : h;
        const Host up_w = random(up_rows * c, 0.3), up_b = random(up_rows),
                   down_w = random(c * h, 0.3), down_b = random(c);
        struct Result {
            Host y, d_x, d_up_w, d_up_b;
        };
        // The chain on either backend; `buffer` makes a buffer of n floats on it.
        auto chain = [&](Ops<float>& ops, auto buffer, const float* gx, const float* gup_w,
                         const float* gup_b, const float* gdown_w, const float* gdown_b,
                         const float* gd_y, auto read) {
            auto up = LinearPrecision::bf16(), down = LinearPrecision::bf16();
            auto pre = buffer(elementwise_buffer_size(ops, up.get(), n * up_rows)),
                 act = buffer(n * h), y = buffer(n * c),
                 d_act = buffer(elementwise_buffer_size(ops, down.get(), n * h)),
                 d_pre = buffer(n * up_rows), d_x = buffer(n * c), d_up_w = buffer(up_rows * c),
                 d_up_b = buffer(up_rows), d_down_w = buffer(c * h);
            LinearForwardArgs<float> up_args{pre.data(), gx, gup_w, gup_b, n, c, up_rows, up.get()};
            up_args.to_elementwise = true;
            ops.linear_forward(up_args);
            if (swiglu)
                ops.swiglu_forward(act.data(), pre.data(), n, h, up.get(), down.get());
            else
                ops.gelu_forward(act.data(), pre.data(), n * h, up.get(), down.get());
            ops.linear_forward({y.data(), act.data(), gdown_w, gdown_b, n, h, c, down.get()});
            LinearBackwardArgs<float> down_args{
                d_act.data(), d_down_w.data(), nullptr, gd_y, nullptr, gdown_w, n, h, c,
                down.get()};
            down_args.d_in_for_reader = true;
            ops.linear_backward(down_args);
            if (swiglu)
                ops.swiglu_backward(d_pre.data(), d_act.data(), pre.data(), n, h, up.get(),
                                    down.get());
            else
                ops.gelu_backward(d_pre.data(), d_act.data(), pre.data(), n * h, up.get(),
                                  down.get());
            ops.linear_backward({d_x.data(), d_up_w.data(), d_up_b.data(), d_pre.data(), nullptr,
                                 gup_w, n, c, up_rows, up.get()});
            return Result{read(y), read(d_x), read(d_up_w), read(d_up_b)};
        };
        const std::vector<float> xf = floats(x), up_wf = floats(up_w), up_bf = floats(up_b),
                                 down_wf = floats(down_w), down_bf = floats(down_b),
                                 d_yf = floats(d_y);
        const Result cpu = chain(
            cpu32, [](int64_t count) { return std::vector<float>(size_t(count), 0.0f); }, xf.data(),
            up_wf.data(), up_bf.data(), down_wf.data(), down_bf.data(), d_yf.data(), to_host);
        Buffer<float> gx = device(x), gup_w = device(up_w), gup_b = device(up_b),
                      gdown_w = device(down_w), gdown_b = device(down_b), gd_y = device(d_y);
        const Result gpu = chain(
            *gpu_,
            [&](int64_t count) {
                return count == up_rows || count == up_rows * c ? device(Host(size_t(count), 0.0))
                                                                : poisoned(size_t(count));
            },
            gx.data(), gup_w.data(), gup_b.data(), gdown_w.data(), gdown_b.data(), gd_y.data(),
            [](const Buffer<float>& b) { return host(b); });
        expect_close(cpu.y, device(gpu.y), 5e-3, "y");
        expect_close(cpu.d_x, device(gpu.d_x), 5e-3, "d_x");
        expect_close(cpu.d_up_w, device(gpu.d_up_w), 5e-3, "d_W of the up projection");
        expect_close(cpu.d_up_b, device(gpu.d_up_b), 5e-3, "d_b of the up projection");
    }
    // The LM head and the loss; d_logits in place of the logits, as the model runs them.
    const Host head_w = random(v * c, 0.3);
    std::vector<int32_t> targets(static_cast<size_t>(n));
    for (int32_t& t : targets) t = int32_t(rng_.next_u64() % uint64_t(v));
    std::vector<float> xf = floats(x), head_wf = floats(head_w), logits(size_t(n * v)),
                       losses(static_cast<size_t>(n)), d_x(size_t(n * c)), d_w(size_t(v * c), 0.0f);
    auto cpu_head = LinearPrecision::bf16();
    LinearForwardArgs<float> head{logits.data(), xf.data(), head_wf.data(), nullptr, n, c, v,
                                  cpu_head.get()};
    head.to_elementwise = true;
    cpu32.linear_forward(head);
    cpu32.softmax_xent(losses.data(), logits.data(), logits.data(), targets.data(), 1.0f / float(n),
                       n, v, cpu_head.get());
    cpu32.linear_backward({d_x.data(), d_w.data(), nullptr, logits.data(), nullptr, head_wf.data(),
                           n, c, v, cpu_head.get()});
    auto gpu_head = LinearPrecision::bf16();
    Buffer<float> gx = device(x), ghead_w = device(head_w),
                  glogits = poisoned(size_t(elementwise_buffer_size(*gpu_, gpu_head.get(), n * v))),
                  glosses = poisoned(size_t(n)), gd_x = poisoned(size_t(n * c)),
                  gd_w = device(Host(size_t(v * c), 0.0));
    Buffer<int32_t> gtargets = device(targets);
    head = {glogits.data(), gx.data(), ghead_w.data(), nullptr, n, c, v, gpu_head.get()};
    head.to_elementwise = true;
    gpu_->linear_forward(head);
    gpu_->softmax_xent(glosses.data(), glogits.data(), glogits.data(), gtargets.data(),
                       1.0f / float(n), n, v, gpu_head.get());
    gpu_->linear_backward({gd_x.data(), gd_w.data(), nullptr, glogits.data(), nullptr,
                           ghead_w.data(), n, c, v, gpu_head.get()});
    expect_close(to_host(losses), glosses, 1e-3, "losses");
    expect_close(to_host(d_x), gd_x, 5e-3, "d_x of the head");
    expect_close(to_host(d_w), gd_w, 5e-3, "d_W of the head");

    // A norm and the layer after it; the norm's backward reads the layer's packed d_in.
    for (const bool layernorm : {true, false}) {
        SCOPED_TRACE(layernorm ? "layernorm" : "rmsnorm");
        const Host nw = random(c), nb = random(c), lw = random(v * c, 0.3), dy = random(n * v),
                   d_x0 = random(n * c);
        struct Result {
            Host d_x, d_w, d_b;
        };
        auto chain = [&](Ops<float>& ops, auto buffer, auto upload, auto read) {
            auto layer = LinearPrecision::bf16();
            auto x_in = upload(x), w = upload(nw), b = upload(nb), weight = upload(lw),
                 gdy = upload(dy), gdx = upload(d_x0), gdw = buffer(c), gdb = buffer(c),
                 out = buffer(n * c), stats = buffer(2 * n), y = buffer(n * v),
                 d_weight = buffer(v * c),
                 d_out = buffer(elementwise_buffer_size(ops, layer.get(), n * c));
            if (layernorm)
                ops.layernorm_forward(out.data(), stats.data(), stats.data() + n, x_in.data(),
                                      w.data(), b.data(), n, c, 1e-5, layer->as_consumer());
            else
                ops.rmsnorm_forward(out.data(), stats.data(), x_in.data(), w.data(), n, c, 1e-5,
                                    layer->as_consumer());
            ops.linear_forward(
                {y.data(), out.data(), weight.data(), nullptr, n, c, v, layer.get()});
            LinearBackwardArgs<float> back{
                d_out.data(), d_weight.data(), nullptr, gdy.data(), nullptr, weight.data(), n, c, v,
                layer.get()};
            back.d_in_for_reader = true;
            ops.linear_backward(back);
            if (layernorm)
                ops.layernorm_backward(gdx.data(), gdw.data(), gdb.data(), d_out.data(),
                                       x_in.data(), w.data(), stats.data(), stats.data() + n, n, c,
                                       layer.get(), nullptr);
            else
                ops.rmsnorm_backward(gdx.data(), gdw.data(), d_out.data(), x_in.data(), w.data(),
                                     stats.data(), n, c, layer.get(), nullptr);
            return Result{read(gdx), read(gdw), layernorm ? read(gdb) : Host{}};
        };
        const Result cpu = chain(
            cpu32, [](int64_t count) { return std::vector<float>(size_t(count), 0.0f); }, floats,
            to_host);
        const Result gpu = chain(
            *gpu_, [&](int64_t count) { return device(Host(size_t(count), 0.0)); },
            [&](const Host& values) { return device(values); },
            [](const Buffer<float>& buf) { return host(buf); });
        expect_close(cpu.d_x, device(gpu.d_x), 5e-3, "the norm's d_x");
        expect_close(cpu.d_w, device(gpu.d_w), 5e-3, "the norm's d_w");
        if (layernorm) expect_close(cpu.d_b, device(gpu.d_b), 5e-3, "the norm's d_b");
    }
}

// Vocabularies in 16-byte rows and not, held in shared memory and too large for it (60,000 FP32
// logits are 240 KB); d_logits starts as NaN, and in place is checked against out of place.
TEST_F(CudaOpsTest, SoftmaxCrossEntropy) {
    for (const auto& [n, v] :
         {std::pair<int64_t, int64_t>{19, 1003}, {19, 1004}, {3, 60000}, {3, 60001}}) {
        SCOPED_TRACE("v " + std::to_string(v));
        Host logits = as_float(random(n * v, 4.0)), d(static_cast<size_t>(n * v)),
             losses(static_cast<size_t>(n));
        std::vector<int32_t> targets(static_cast<size_t>(n));
        for (int32_t& t : targets) t = int32_t(rng_.next_u64() % uint64_t(v));
        Buffer<float> glogits = device(logits), gd = poisoned(d.size()),
                      glosses = poisoned(losses.size());
        Buffer<int32_t> gtargets = device(targets);
        cpu_.softmax_xent(losses.data(), d.data(), logits.data(), targets.data(), 1.0 / double(n),
                          n, v, nullptr);
        gpu_->softmax_xent(glosses.data(), gd.data(), glogits.data(), gtargets.data(),
                           float(1.0 / double(n)), n, v, nullptr);
        expect_close(losses, glosses, 1e-5, "losses");
        expect_close(d, gd, 1e-5, "d_logits");
        // In place, as the model runs it: one buffer for the logits and their gradient.
        Buffer<float> glosses2 = poisoned(losses.size());
        gpu_->softmax_xent(glosses2.data(), glogits.data(), glogits.data(), gtargets.data(),
                           float(1.0 / double(n)), n, v, nullptr);
        EXPECT_EQ(glosses.download(), glosses2.download());
        EXPECT_EQ(gd.download(), glogits.download());
    }
}

// The multi-tensor step against the CPU's, spans of several chunks with and without decay,
// clipping active; three steps so the moments matter.
TEST_F(CudaOpsTest, AdamWStep) {
    const std::vector<TensorSpan> spans = {
        {0, 20000, true}, {20000, 7, false}, {20007, 9000, true}};
    const int64_t total = 29007;
    const Host w0 = random(total), m0(size_t(total), 0.0);
    std::vector<float> w(w0.begin(), w0.end()), m(size_t(total), 0.0f), v(size_t(total), 0.0f);
    Buffer<float> gw = device(w0), gm = device(m0), gv = device(m0);
    CpuOps<float> cpu32;
    for (int t = 1; t <= 3; ++t) {
        const Host g = random(total, 0.05);
        std::vector<float> gf(g.begin(), g.end());
        Buffer<float> gg = device(g);
        AdamWHyper h{1e-2f,
                     0.9f,
                     0.95f,
                     1e-8f,
                     float(1 - std::pow(0.9, t)),
                     float(1 - std::pow(0.95, t)),
                     float(1 - 1e-2 * 0.1),
                     1.0,
                     1.0};
        double cpu_norm[2];
        cpu32.adamw_step(w.data(), gf.data(), {StorageFormat::fp32, m.data()},
                         {StorageFormat::fp32, v.data()}, spans, &h, 1.0, cpu_norm);
        Buffer<AdamWHyper> gh(gpu_->memory());
        gh.upload(&h, 1);
        Buffer<double> gnorm(gpu_->memory(), 2);
        gpu_->adamw_step(gw.data(), gg.data(), {StorageFormat::fp32, gm.data()},
                         {StorageFormat::fp32, gv.data()}, spans, gh.data(), 1.0, gnorm.data());
        const std::vector<double> gpu_norm = gnorm.download();
        EXPECT_NEAR(gpu_norm[0], cpu_norm[0], 1e-12 * cpu_norm[0]);
        EXPECT_NEAR(gpu_norm[1], cpu_norm[1], 1e-12 * cpu_norm[1]);
        EXPECT_LT(cpu_norm[1], 1.0); // clipping is exercised
    }
    expect_close(Host(w.begin(), w.end()), gw, 1e-6, "adamw weights");
    expect_close(Host(m.begin(), m.end()), gm, 1e-6, "adamw m");
    expect_close(Host(v.begin(), v.end()), gv, 1e-6, "adamw v");
}

// DeepSeek-V3's BF16 moments (the blockwise policy), in every combination with FP32 ones: without
// clipping the update is the same arithmetic on both backends, so weights and moment codes agree
// bit for bit, in the vector body and in the unaligned spans' ends.
TEST_F(CudaOpsTest, AdamWStepWithBf16MomentsMatchesTheCpuBitForBit) {
    const std::vector<TensorSpan> spans = {{0, 9001, true}, {9001, 7, false}, {9008, 4099, true}};
    const int64_t total = 13107;
    for (auto [mf, vf] : {std::pair{StorageFormat::bf16, StorageFormat::bf16},
                          {StorageFormat::fp32, StorageFormat::bf16},
                          {StorageFormat::bf16, StorageFormat::fp32}}) {
        SCOPED_TRACE(std::string(storage_format_name(mf)) + " m, " + storage_format_name(vf) +
                     " v");
        const Host w0 = random(total);
        std::vector<float> w(w0.begin(), w0.end());
        Buffer<float> gw = device(w0);
        const size_t m_bytes = size_t(total * storage_format_bytes(mf)),
                     v_bytes = size_t(total * storage_format_bytes(vf));
        std::vector<uint8_t> m(m_bytes, 0), v(v_bytes, 0);
        Buffer<uint8_t> gm(gpu_->memory(), int64_t(m_bytes)), gv(gpu_->memory(), int64_t(v_bytes));
        gm.zero();
        gv.zero();
        CpuOps<float> cpu32;
        Buffer<AdamWHyper> gh(gpu_->memory());
        Buffer<double> gnorm(gpu_->memory(), 2);
        for (int t = 1; t <= 3; ++t) {
            const Host g = random(total, 0.05);
            std::vector<float> gf(g.begin(), g.end());
            Buffer<float> gg = device(g);
            AdamWHyper h{};
            h.lr = 1e-2f;
            h.beta1 = 0.9f;
            h.beta2 = 0.95f;
            h.eps = 1e-8f;
            h.bias1 = float(1 - std::pow(0.9, t));
            h.bias2 = float(1 - std::pow(0.95, t));
            h.decay = float(1 - 1e-2 * 0.1);
            h.clip = 1.0;
            double cpu_norm[2];
            cpu32.adamw_step(w.data(), gf.data(), {mf, m.data()}, {vf, v.data()}, spans, &h, 0.0,
                             cpu_norm);
            gh.upload(&h, 1);
            gpu_->adamw_step(gw.data(), gg.data(), {mf, gm.data()}, {vf, gv.data()}, spans,
                             gh.data(), 0.0, gnorm.data());
        }
        const std::vector<float> got_w = gw.download();
        int64_t differ = 0;
        for (int64_t i = 0; i < total; ++i)
            differ += std::memcmp(&got_w[size_t(i)], &w[size_t(i)], sizeof(float)) != 0;
        EXPECT_EQ(differ, 0) << "weights differ";
        EXPECT_EQ(gm.download(), m);
        EXPECT_EQ(gv.download(), v);
        int64_t moved = 0;
        for (int64_t i = 0; i < total; ++i) moved += w[size_t(i)] != float(w0[size_t(i)]);
        EXPECT_GT(moved, total - 10);
    }
}

// FP8-LM's scaled storage: over three steps the GPU leaves the same weights, rounded gradients and
// decoded moments as the CPU, bit for bit, for O2, O1 (FP32 moments) and an FP32 master with E5M2
// moments. Spans of several chunks, one of values a million times smaller (a scale of its own);
// clipping off, since the backends sum the norm in different orders. With clipping on, the norms
// agree to 1e-12 and the weights to 1e-6 (a clipped gradient an ulp apart may round m to a
// neighbouring FP8 code).
TEST_F(CudaOpsTest, ScaledAdamWStepMatchesTheCpuBitForBit) {
    const std::vector<ParamTensor> tensors = {{"a", {100, 200}, 0, 20000, true},
                                              {"b", {7}, 20000, 7, false},
                                              {"c", {9000}, 20007, 9000, true}};
    const int64_t total = 29007;
    CpuOps<float> cpu;
    struct Case {
        const char* policy;
        double clip;
    };
    for (const Case c : {Case{"fp8lm-o2", 0.0}, Case{"fp8lm-o1", 0.0},
                         Case{"fp8lm-o2:master=fp32,moment1=e5m2", 0.0}, Case{"fp8lm-o2", 1.0}}) {
        SCOPED_TRACE(std::string(c.policy) + (c.clip > 0 ? " clipped" : ""));
        Host w0 = random(total);
        for (int64_t i = 20000; i < 20007; ++i) w0[size_t(i)] *= 1e-6;
        std::vector<float> w(w0.begin(), w0.end());
        Buffer<float> gw = device(w0);
        AdamWConfig config;
        config.grad_clip = c.clip;
        const PrecisionPolicy policy = make_policy(c.policy);
        AdamW cpu_opt(cpu, tensors, w.data(), policy, config);
        AdamW gpu_opt(*gpu_, tensors, gw.data(), policy, config);
        ASSERT_EQ(w, gw.download()); // the master's representable values
        for (int t = 1; t <= 3; ++t) {
            Host g0 = random(total, 0.05);
            for (int64_t i = 20000; i < 20007; ++i) g0[size_t(i)] *= 1e-6;
            std::vector<float> g(g0.begin(), g0.end());
            Buffer<float> gg = device(g0);
            const double cpu_norm = cpu_opt.step(w.data(), g.data(), 1e-2);
            const double gpu_norm = gpu_opt.step(gw.data(), gg.data(), 1e-2);
            EXPECT_NEAR(gpu_norm, cpu_norm, 1e-12 * cpu_norm);
            ASSERT_EQ(g, gg.download()) << "rounded gradients, step " << t;
            if (c.clip > 0) {
                EXPECT_GT(cpu_norm, c.clip); // clipping is exercised
                continue;
            }
            ASSERT_EQ(w, gw.download()) << "weights, step " << t;
            const AdamW::Moments cm = cpu_opt.export_state(), gm = gpu_opt.export_state();
            ASSERT_EQ(cm.m, gm.m) << "m, step " << t;
            ASSERT_EQ(cm.v, gm.v) << "v, step " << t;
        }
        expect_close(Host(w.begin(), w.end()), gw, 1e-6, "weights");
    }
}

// The whole model: the same initialisation and batch on both backends give the same loss and
// gradients, written over NaN (Gpt::Gradients::overwrite) or accumulated into zeros, and a few
// AdamW steps the same losses (GPT-2 and Llama flavours). Under `fp32` the
// backends differ only in summation order (1e-4); under `bf16` the GPU also runs attention in BF16
// (flash attention) and an operand a few ulps apart can round to a neighbouring BF16 value, so
// they agree to 1e-2.
TEST_F(CudaOpsTest, WholeModelMatchesTheCpu) {
    for (Flavor flavor : {Flavor::gpt2, Flavor::llama})
        for (auto [name, tol] : {std::pair{"fp32", 1e-4}, std::pair{"bf16", 1e-2}}) {
            SCOPED_TRACE(std::string(flavor_name(flavor)) + " " + name);
            ModelConfig c = testing::tiny_config();
            c.flavor = flavor;
            testing::ModelOnBothBackends m(c, make_policy(name), *gpu_, seed_, rng_);
            for (int step = 0; step < 4; ++step) {
                // Two micro-batches of the same batch: the first writes over gradient buffers of
                // NaN (Gpt::Gradients::overwrite), the second adds to them. The gradients are
                // compared after each in the first step; later, under bf16, the weights have
                // moved apart by a step (1.4–1.7e-2 in the second).
                float* cpu_grads = m.cpu_model.params().grads();
                std::fill(cpu_grads, cpu_grads + m.cpu_model.params().size(), std::nanf(""));
                OCTET_CUDA_CHECK(cudaMemset(m.gpu_model.params().grads(), 0xFF,
                                            size_t(m.gpu_model.params().size()) * sizeof(float)));
                for (auto gradients :
                     {Gpt<float>::Gradients::overwrite, Gpt<float>::Gradients::accumulate}) {
                    const float cpu_loss =
                        m.cpu_model.forward(m.inputs(), m.targets(), m.batch, c.seq_len);
                    const float gpu_loss =
                        m.gpu_model.forward(m.inputs(), m.targets(), m.batch, c.seq_len);
                    EXPECT_NEAR(gpu_loss, cpu_loss, tol * cpu_loss) << "step " << step;
                    m.cpu_model.backward(gradients);
                    m.gpu_model.backward(gradients);
                    if (step > 0) continue;
                    const std::vector<float> cg = m.cpu_model.params().download_grads(),
                                             gg = m.gpu_model.params().download_grads();
                    double err = 0, norm = 0;
                    for (size_t i = 0; i < cg.size(); ++i) {
                        ASSERT_FALSE(std::isnan(gg[i])) << testing::seed_note(seed_);
                        err += double(gg[i] - cg[i]) * double(gg[i] - cg[i]);
                        norm += double(cg[i]) * double(cg[i]);
                    }
                    EXPECT_LE(std::sqrt(err / norm), tol)
                        << "gradients " << testing::seed_note(seed_);
                }
                m.cpu_opt.step(m.cpu_model.params().values(), m.cpu_model.params().grads(), 3e-3);
                m.gpu_opt.step(m.gpu_model.params().values(), m.gpu_model.params().grads(), 3e-3);
            }
        }
}

// A checkpoint written from GPU memory holds what the GPU held, and loads back into GPU memory
// and into a CPU model unchanged.
TEST_F(CudaOpsTest, CheckpointsRoundTripThroughGpuMemory) {
    ModelConfig c;
    const PrecisionPolicy policy = make_policy("bf16");
    Gpt<float> model(c, *gpu_, policy, seed_);
    AdamW opt(*gpu_, model.params().tensors(), model.params().values(), policy, {});
    std::vector<int32_t> tokens(size_t(2 * c.seq_len + 1));
    for (int32_t& t : tokens) t = int32_t(rng_.next_u64() % uint64_t(c.vocab_size));
    for (int step = 0; step < 2; ++step) {
        model.zero_grads();
        model.forward(tokens.data(), tokens.data() + 1, 2, c.seq_len);
        model.backward();
        opt.step(model.params().values(), model.params().grads(), 1e-3);
    }
    const std::string path = std::filesystem::temp_directory_path() /
                             ("octet-gpu-checkpoint-" + std::to_string(seed_) + ".safetensors");
    TrainConfig config;
    config.model = c;
    save_checkpoint(path, config, model, opt, {2, 0, 0}, "");
    Gpt<float> gpu_copy(c, *gpu_, policy, seed_ + 1);
    AdamW gpu_opt(*gpu_, gpu_copy.params().tensors(), gpu_copy.params().values(), policy, {});
    load_checkpoint_tensors(path, gpu_copy, &gpu_opt);
    CpuOps<float> cpu32;
    Gpt<float> cpu_copy(c, cpu32, policy, seed_ + 1);
    load_checkpoint_tensors(path, cpu_copy, nullptr);
    std::filesystem::remove(path);
    EXPECT_EQ(gpu_copy.params().download_values(), model.params().download_values());
    EXPECT_EQ(cpu_copy.params().download_values(), model.params().download_values());
    const AdamW::Moments saved = opt.export_state(), loaded = gpu_opt.export_state();
    EXPECT_EQ(loaded.m, saved.m);
    EXPECT_EQ(loaded.v, saved.v);
    EXPECT_EQ(loaded.step, 2);
}

// Every reduction runs in a fixed order (the token-embedding gradient sorts, cuDNN's attention
// backward runs its deterministic algorithm): the same seed trains to the same bits, and a run
// resumed from a checkpoint continues bit for bit, with FP32 optimizer storage and FP8-LM's
// scaled storage. Repeated tokens exercise the sort.
TEST_F(CudaOpsTest, GpuTrainingIsBitReproducibleAndResumes) {
    ModelConfig c;
    c.flavor = Flavor::gpt2;
    c.vocab_size = 50; // few tokens: many repeats per batch
    std::vector<int32_t> tokens(size_t(4 * c.seq_len + 1));
    for (int32_t& t : tokens) t = int32_t(rng_.next_u64() % uint64_t(c.vocab_size));
    struct Run {
        Gpt<float> model;
        AdamW opt;
        Run(const ModelConfig& config, Ops<float>& ops, const PrecisionPolicy& p, uint64_t seed)
            : model(config, ops, p, seed),
              opt(ops, model.params().tensors(), model.params().values(), p, {}) {}
        std::vector<float> steps(const std::vector<int32_t>& x, int64_t seq, int count) {
            std::vector<float> losses;
            for (int s = 0; s < count; ++s) {
                model.zero_grads();
                losses.push_back(model.forward(x.data(), x.data() + 1, 4, seq));
                model.backward();
                opt.step(model.params().values(), model.params().grads(), 1e-3);
            }
            return losses;
        }
    };
    for (const char* name : {"bf16", "fp8lm-o2"}) {
        SCOPED_TRACE(name);
        const PrecisionPolicy policy = make_policy(name);
        Run a(c, *gpu_, policy, seed_), b(c, *gpu_, policy, seed_);
        EXPECT_EQ(a.steps(tokens, c.seq_len, 4), b.steps(tokens, c.seq_len, 4));
        EXPECT_EQ(a.model.params().download_values(), b.model.params().download_values());

        const std::string path = std::filesystem::temp_directory_path() /
                                 ("octet-gpu-resume-" + std::to_string(seed_) + ".safetensors");
        TrainConfig config;
        config.model = c;
        save_checkpoint(path, config, a.model, a.opt, {4, 0, 0}, "");
        Run resumed(c, *gpu_, policy, seed_ + 1);
        load_checkpoint_tensors(path, resumed.model, &resumed.opt);
        std::filesystem::remove(path);
        EXPECT_EQ(resumed.steps(tokens, c.seq_len, 3), a.steps(tokens, c.seq_len, 3));
        EXPECT_EQ(resumed.model.params().download_values(), a.model.params().download_values());
    }
}

} // namespace
} // namespace octet
