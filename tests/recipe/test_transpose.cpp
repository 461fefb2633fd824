// FP8 transposes (recipe/transpose.h), against quantizing the transposed high-precision tensor
// directly. The scaling-aware path is lossless where values stay normal, correctly rounded where
// they become subnormal, and identical to requantizing at the same scales.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "common/error.h"
#include "numerics/fidelity.h"
#include "recipe/block_quantize.h"
#include "recipe/transpose.h"
#include "tests/harness/fresh_seed.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::random_matrix;
using testing::seed_note;

std::vector<float> transpose(const std::vector<float>& x, int64_t rows, int64_t cols) {
    std::vector<float> t(x.size());
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = x[size_t(r * cols + c)];
    return t;
}

const int64_t shapes[][2] = {{256, 384}, {130, 200}, {1, 128}, {128, 1}, {300, 129}};

TEST(Transpose, ScalingAwareIsExactForNormalsRoundsSubnormalsAndEqualsRequantizing) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    auto row_quantizer = make_recipe("blockwise:pow2=true")->make_quantizer(TensorRole::gradient);
    for (auto [rows, cols] : shapes) {
        // Rows spread over 2^±8 so that tiles mix scales and some values shift into subnormals.
        const std::vector<float> x = random_matrix(rng, rows, cols, 8.0);
        const QuantizedTensor q = row_quantizer->quantize({x.data(), rows, cols});
        const QuantizedTensor t = transpose_scaling_aware(q);
        ASSERT_EQ(t.rows, cols);
        ASSERT_EQ(t.cols, rows);
        ASSERT_EQ(t.scales.size(), 1u);
        ASSERT_EQ(t.scales[0].block_rows, 1);
        ASSERT_EQ(t.scales[0].block_cols, 128);
        const std::vector<float> xq = dequantize(q);
        const std::vector<float> tq = dequantize(t);
        const float min_normal = std::ldexp(1.0f, -6);
        int64_t shifted_to_subnormal = 0;
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                const float v = xq[size_t(r * cols + c)];
                const float scale_t = t.scales[0].at(c, r);
                const float code_value = v / scale_t; // exact: power-of-two scales
                const uint8_t got = t.codes[size_t(c * rows + r)];
                if (std::fabs(code_value) >= min_normal || v == 0) {
                    ASSERT_EQ(tq[size_t(c * rows + r)], v)
                        << "normal value changed at " << r << "," << c;
                } else {
                    ++shifted_to_subnormal;
                    ASSERT_EQ(got, encode(code_value, q.format, Overflow::ieee))
                        << "subnormal not rounded to nearest-even at " << r << "," << c;
                }
            }
        }
        if (rows >= 128 && cols >= 128) {
            EXPECT_GT(shifted_to_subnormal, 0) << "test lost its teeth";
        }
        // Hence it is the same as requantizing the dequantized tensor at the same scales: it is
        // never worse than dequantize + transpose + requantize at equal scales.
        std::vector<BlockScale> scales;
        for (float s : t.scales[0].scale_inv) scales.push_back({1.0f / s, s});
        const std::vector<float> xqt = transpose(xq, rows, cols);
        const QuantizedTensor again = quantize_with_scales({xqt.data(), cols, rows}, q.format,
                                                           {1, 128}, ScaleEncoding::fp32, scales);
        EXPECT_EQ(t.codes, again.codes) << rows << "x" << cols;
    }
}

// Against the direct quantization of Xᵀ: report the three SNRs. The scaling-aware path shares
// one scale per 128×128 tile, so small rows of a tile lose bits to subnormals where the naive
// path, which rescales each new group, does not: its advantage is speed (no dequantize and
// requantize), and its accuracy guarantee is the one above, at equal scales.
TEST(Transpose, BothPathsAgainstDirectQuantizationOfTheTranspose) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const int64_t rows = 512, cols = 384;
    // Rows spread over 2^±2 (activations) and 2^±10 (gradients: tokens differ widely).
    for (double spread : {2.0, 10.0}) {
        const std::vector<float> x = random_matrix(rng, rows, cols, spread);
        const std::vector<float> xt = transpose(x, rows, cols);
        auto quantizer = make_recipe("blockwise:pow2=true")->make_quantizer(TensorRole::gradient);
        const QuantizedTensor q = quantizer->quantize({x.data(), rows, cols});
        const QuantizedTensor sa = transpose_scaling_aware(q);
        const QuantizedTensor naive = transpose_naive(q, *quantizer);
        const QuantizedTensor direct = quantizer->quantize({xt.data(), cols, rows});
        const MatrixView ref{xt.data(), cols, rows};
        const FidelityMetrics m_sa = measure_fidelity(ref, sa);
        const FidelityMetrics m_naive = measure_fidelity(ref, naive);
        const FidelityMetrics m_direct = measure_fidelity(ref, direct);
        std::printf(
            "rows spread 2^±%.0f, SNR (row SNR) vs X^T: direct %.2f (%.2f), naive %.2f (%.2f), "
            "scaling-aware %.2f (%.2f) dB\n",
            spread, m_direct.snr_db, m_direct.snr_rows_db, m_naive.snr_db, m_naive.snr_rows_db,
            m_sa.snr_db, m_sa.snr_rows_db);
        // The tensor SNR is ruled by the large rows, which every path keeps at full precision.
        EXPECT_GT(m_sa.snr_db, m_direct.snr_db - 1.0);
        EXPECT_GT(m_naive.snr_db, m_direct.snr_db - 1.0);
    }
}

TEST(Transpose, AllZeroGroupsDoNotInflateTheTileScale) {
    // Two rows in one tile: row 0 all zeros (scale 1), row 1 tiny values (scale 2^-20).
    std::vector<float> x(2 * 128, 0.0f);
    for (int c = 0; c < 128; ++c) x[size_t(128 + c)] = std::ldexp(float(1 + c % 5), -15);
    const QuantizedTensor q = make_recipe("blockwise:pow2=true")
                                  ->make_quantizer(TensorRole::activation)
                                  ->quantize({x.data(), 2, 128});
    const QuantizedTensor t = transpose_scaling_aware(q);
    const std::vector<float> tq = dequantize(t);
    for (int c = 0; c < 128; ++c) {
        EXPECT_EQ(tq[size_t(c * 2 + 1)], x[size_t(128 + c)]);
        EXPECT_EQ(tq[size_t(c * 2)], 0.0f);
    }
}

TEST(Transpose, NaiveWorksForEveryRecipeAndScalingAwareRefusesWhatItCannotDo) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const std::vector<float> x = random_matrix(rng, 64, 96, 3.0);
    const std::vector<float> xt = transpose(x, 64, 96);
    for (const std::string& name : recipe_names()) {
        auto quantizer = make_recipe(name)->make_quantizer(TensorRole::activation);
        quantizer->quantize({x.data(), 64, 96});
        const QuantizedTensor q = quantizer->quantize({x.data(), 64, 96});
        const QuantizedTensor t = transpose_naive(q, *quantizer);
        EXPECT_EQ(t.rows, 96);
        EXPECT_GT(measure_fidelity({xt.data(), 96, 64}, t).snr_db, 20.0) << name;
    }
    const QuantizedTensor fp32 = make_recipe("blockwise")
                                     ->make_quantizer(TensorRole::activation)
                                     ->quantize({x.data(), 64, 96});
    EXPECT_THROW(transpose_scaling_aware(fp32), Error); // FP32 scales
    const QuantizedTensor two_level =
        make_recipe("moss")->make_quantizer(TensorRole::activation)->quantize({x.data(), 64, 96});
    EXPECT_THROW(transpose_scaling_aware(two_level), Error); // two levels
}

TEST(Transpose, NonFiniteValuesSurviveTheScalingAwareTranspose) {
    std::vector<float> x(128 * 4, 1.0f);
    x[3] = std::numeric_limits<float>::infinity();
    x[130] = std::numeric_limits<float>::quiet_NaN();
    const QuantizedTensor q = make_recipe("blockwise:pow2=true")
                                  ->make_quantizer(TensorRole::activation)
                                  ->quantize({x.data(), 4, 128});
    const std::vector<float> tq = dequantize(transpose_scaling_aware(q));
    EXPECT_TRUE(std::isnan(tq[3 * 4 + 0])); // E4M3 has no Inf: NaN
    EXPECT_TRUE(std::isnan(tq[2 * 4 + 1]));
    EXPECT_EQ(tq[5 * 4 + 2], 1.0f);
}

} // namespace
} // namespace octet
