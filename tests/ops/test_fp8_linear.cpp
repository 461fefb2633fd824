// FP8 linear layers on the CPU (cpu/linear.cpp + ops/linear_precision.cpp).
// 1. Exact by construction (as CUTLASS tests FP8 GEMMs): integer operands in [-14, 14] with
//    power-of-two scales are represented exactly by E4M3, survive every transpose exactly, and
//    their FP32 sums are exact, so fprop, dgrad and wgrad must equal a float64 reference bit for
//    bit.
// 2. Any recipe: the FP8 GEMM equals the float64 product of the dequantized operands to FP32
//    rounding (relative Frobenius error < 1e-5).
// 3. BF16 and FP8 layers keep what their backward reads (LinearPrecision::keeps_input()): a
//    backward given no input, after the input was overwritten, gives the same bits as one
//    given the input; an exact layer refuses it.
// 4. Block-wise layers (both orientations of x and dy in one pass) quantize x and dy rounded to
//    BF16, what the GPU's ops hand them: the same codes and scales as quantizing the rounded
//    tensors, and a bias gradient from the rounded dy; other recipes quantize them as given.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "cpu/cpu_ops.h"
#include "ops/linear_precision.h"
#include "recipe/transpose.h"
#include "tests/harness/fresh_seed.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::seed_note;

// Up to 14: MX's floor rule maps a block's amax into [256, 512) and saturates above 448, so 15
// (1.875 · 8) would clip; every integer ≤ 14 has a mantissa ≤ 1.75 and stays exact.
std::vector<float> integers(Rng& rng, size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = float(int64_t(rng.next_u64() % 29) - 14);
    return v;
}

// out[i, j] = Σ_k a[i, k] · b[j, k] in float64.
std::vector<double> reference_nt(const std::vector<float>& a, const std::vector<float>& b,
                                 int64_t n, int64_t m, int64_t k) {
    std::vector<double> out(size_t(n * m), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < m; ++j)
            for (int64_t t = 0; t < k; ++t)
                out[size_t(i * m + j)] += double(a[size_t(i * k + t)]) * b[size_t(j * k + t)];
    return out;
}

std::vector<float> transposed(const std::vector<float>& x, int64_t rows, int64_t cols) {
    std::vector<float> t(x.size());
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = x[size_t(r * cols + c)];
    return t;
}

TEST(Fp8Linear, ExactByConstructionForEveryPowerOfTwoRecipe) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const int64_t n = 256, k = 384, m = 128; // tokens, in, out
    const std::vector<float> x = integers(rng, n * k), w = integers(rng, m * k),
                             dy = integers(rng, n * m);
    const std::vector<double> y_ref = reference_nt(x, w, n, m, k);
    const std::vector<double> dx_ref = reference_nt(dy, transposed(w, m, k), n, k, m);
    const std::vector<double> dw_ref =
        reference_nt(transposed(dy, n, m), transposed(x, n, k), m, k, n);
    CpuOps<float> ops;
    for (const char* spec :
         {"blockwise:pow2=true", "te-current:pow2=true,format=e4m3", "rowwise", "mxfp8"}) {
        SCOPED_TRACE(spec);
        auto precision = LinearPrecision::fp8(*make_recipe(spec));
        std::vector<float> y(size_t(n * m)), dx(size_t(n * k), 0.0f), dw(size_t(m * k), 0.0f);
        ops.linear_forward({y.data(), x.data(), w.data(), nullptr, n, k, m, precision.get()});
        ops.linear_backward({dx.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), n, k, m,
                             precision.get()});
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], float(y_ref[i])) << "fprop " << i;
        for (size_t i = 0; i < dx.size(); ++i) ASSERT_EQ(dx[i], float(dx_ref[i])) << "dgrad " << i;
        for (size_t i = 0; i < dw.size(); ++i) ASSERT_EQ(dw[i], float(dw_ref[i])) << "wgrad " << i;
    }
}

TEST(Fp8Linear, EqualsTheProductOfDequantizedOperandsForEveryRecipe) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const int64_t n = 70, k = 300, m = 50; // not multiples of any block
    std::vector<float> x = testing::random_matrix(rng, n, k, 3.0),
                       w = testing::random_matrix(rng, m, k, 1.0);
    CpuOps<float> ops;
    for (const std::string& spec : recipe_names()) {
        SCOPED_TRACE(spec);
        auto precision = LinearPrecision::fp8(*make_recipe(spec));
        std::vector<float> y(size_t(n * m));
        ops.linear_forward({y.data(), x.data(), w.data(), nullptr, n, k, m, precision.get()});
        // The same operands, quantized by a fresh precision object, dequantized, in float64.
        auto again = LinearPrecision::fp8(*make_recipe(spec));
        const auto op = again->forward_fp8(x.data(), n, k, w.data(), m);
        const std::vector<double> ref = reference_nt(dequantize(op.a), dequantize(op.b), n, m, k);
        double err = 0, norm = 0;
        for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_FALSE(std::isnan(y[i]));
            err += (y[i] - ref[i]) * (y[i] - ref[i]);
            norm += ref[i] * ref[i];
        }
        EXPECT_LT(std::sqrt(err / norm), 1e-5);
    }
}

bool same_quantized(const QuantizedTensor& a, const QuantizedTensor& b) {
    if (a.codes != b.codes || a.scales.size() != b.scales.size()) return false;
    for (size_t l = 0; l < a.scales.size(); ++l)
        if (a.scales[l].scale_inv != b.scales[l].scale_inv) return false;
    return true;
}

std::vector<float> bf16_rounded(const std::vector<float>& x) {
    std::vector<float> out(x.size());
    for (size_t i = 0; i < x.size(); ++i)
        out[i] = round_to_format(x[i], Format::bf16, Overflow::ieee);
    return out;
}

// Layers whose recipe quantizes both orientations in one pass (block-wise, MX, MOSS) take x and dy
// rounded to BF16, as the GPU's ops write them; the others quantize what they are given.
TEST(Fp8Linear, OnePassLayersQuantizeBf16Sources) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const int64_t n = 200, k = 260, m = 130;
    const std::vector<float> x = testing::random_matrix(rng, n, k, 3.0),
                             w = testing::random_matrix(rng, m, k, 1.0),
                             dy = testing::random_matrix(rng, n, m, 1.0);
    const std::vector<float> x16 = bf16_rounded(x), dy16 = bf16_rounded(dy);
    for (const std::string& spec : recipe_names()) {
        SCOPED_TRACE(spec);
        const bool one_pass = spec == "blockwise" || spec == "mxfp8" || spec == "moss";
        auto given = LinearPrecision::fp8(*make_recipe(spec)),
             rounded = LinearPrecision::fp8(*make_recipe(spec));
        EXPECT_EQ(given->fp8_bf16_sources(), one_pass);
        const auto fwd = given->forward_fp8(x.data(), n, k, w.data(), m);
        if (one_pass) {
            EXPECT_TRUE(
                same_quantized(fwd.a, rounded->forward_fp8(x16.data(), n, k, w.data(), m).a));
            const auto dg = given->dgrad_fp8(dy.data(), w.data());
            EXPECT_TRUE(same_quantized(dg.a, rounded->dgrad_fp8(dy16.data(), w.data()).a));
            const auto wg = given->wgrad_fp8();
            EXPECT_TRUE(same_quantized(wg.a, rounded->wgrad_fp8().a));
            EXPECT_EQ(std::vector<float>(given->fp8_dy(), given->fp8_dy() + n * m), dy16);
            // The transposes come from the rounded sources, whatever the plans' scales allow.
            const auto recipe = make_recipe(spec);
            EXPECT_TRUE(
                same_quantized(wg.a, recipe->make_quantizer(TensorRole::gradient)
                                         ->quantize({transposed(dy16, n, m).data(), m, n})));
            EXPECT_TRUE(same_quantized(wg.b, recipe->make_quantizer(TensorRole::activation)
                                                 ->quantize({transposed(x16, n, k).data(), k, n})));
        } else {
            // As given: what the recipe's quantizer makes of x itself; dy read in place.
            auto quantizer = make_recipe(spec)->make_quantizer(TensorRole::activation);
            EXPECT_TRUE(same_quantized(fwd.a, quantizer->quantize({x.data(), n, k})));
            given->dgrad_fp8(dy.data(), w.data());
            EXPECT_EQ(given->fp8_dy(), dy.data());
        }
    }
}

TEST(Fp8Linear, BackwardReadsOnlyWhatTheForwardKept) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const int64_t n = 130, k = 256, m = 72;
    const std::vector<float> x = testing::random_matrix(rng, n, k, 3.0),
                             w = testing::random_matrix(rng, m, k, 1.0),
                             dy = testing::random_matrix(rng, n, m, 1.0);
    CpuOps<float> ops;
    auto make = [](const std::string& spec) {
        return spec == "bf16" ? LinearPrecision::bf16() : LinearPrecision::fp8(*make_recipe(spec));
    };
    std::vector<std::string> specs = recipe_names();
    specs.insert(specs.begin(), "bf16");
    for (const std::string& spec : specs) {
        SCOPED_TRACE(spec);
        const auto with_input = make(spec), without_input = make(spec);
        ASSERT_TRUE(with_input->keeps_input());
        std::vector<float> y(size_t(n * m)), dx(size_t(n * k), 0.0f), dw(size_t(m * k), 0.0f);
        ops.linear_forward({y.data(), x.data(), w.data(), nullptr, n, k, m, with_input.get()});
        ops.linear_backward({dx.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), n, k, m,
                             with_input.get()});
        std::vector<float> x_overwritten = x, dx2(dx.size(), 0.0f), dw2(dw.size(), 0.0f);
        ops.linear_forward(
            {y.data(), x_overwritten.data(), w.data(), nullptr, n, k, m, without_input.get()});
        std::fill(x_overwritten.begin(), x_overwritten.end(), std::nanf(""));
        ops.linear_backward({dx2.data(), dw2.data(), nullptr, dy.data(), nullptr, w.data(), n, k, m,
                             without_input.get()});
        for (size_t i = 0; i < dx.size(); ++i) ASSERT_EQ(dx[i], dx2[i]) << "dgrad " << i;
        for (size_t i = 0; i < dw.size(); ++i) ASSERT_EQ(dw[i], dw2[i]) << "wgrad " << i;
    }
    auto exact = LinearPrecision::exact();
    EXPECT_FALSE(exact->keeps_input());
    std::vector<float> dx(size_t(n * k)), dw(size_t(m * k));
    EXPECT_THROW(ops.linear_backward({dx.data(), dw.data(), nullptr, dy.data(), nullptr, w.data(),
                                      n, k, m, exact.get()}),
                 Error);
}

} // namespace
} // namespace octet
