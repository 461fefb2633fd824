// MOSS two-level microscaling (recipe/moss.h): the definition, element by element, and the
// paper's reported ordering on heavy-tailed activations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "numerics/fidelity.h"
#include "numerics/synthetic.h"
#include "recipe/moss.h"
#include "recipe/recipe.h"
#include "tests/harness/fresh_seed.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::random_matrix;
using testing::seed_note;

// ceil(log2(r)) by libm, an implementation independent of numerics/formats.h.
int ceil_log2_libm(double r) {
    int k = int(std::ceil(std::log2(r)));
    while (std::ldexp(1.0, k) < r) ++k;
    while (std::ldexp(1.0, k - 1) >= r) --k;
    return k;
}

TEST(Moss, ScalesFollowTheDefinitionGroupByGroup) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    for (int64_t group : {32, 128}) {
        for (int64_t global_rows : {0, 16}) {
            const int64_t rows = 37, cols = 300; // neither a multiple of the group nor of 16
            const std::vector<float> x = random_matrix(rng, rows, cols, 10.0);
            const QuantizedTensor q =
                quantize_two_level({x.data(), rows, cols}, {group, global_rows, Format::e4m3});
            ASSERT_EQ(q.scales.size(), 2u);
            const ScaleGrid& local = q.scales[0];
            const ScaleGrid& global = q.scales[1];
            const int64_t coarse = global_rows ? global_rows : rows;
            ASSERT_EQ(global.grid_rows, (rows + coarse - 1) / coarse);
            ASSERT_EQ(global.grid_cols, 1);
            for (int64_t r = 0; r < rows; ++r) {
                // s = max_i s_i over the coarse block of this row.
                float s = 0;
                for (int64_t rr = (r / coarse) * coarse;
                     rr < std::min(rows, (r / coarse + 1) * coarse); ++rr)
                    for (int64_t c = 0; c < cols; ++c)
                        s = std::max(s, std::fabs(x[size_t(rr * cols + c)]) / 448.0f);
                ASSERT_EQ(global.at(r, 0), s);
                for (int64_t g0 = 0; g0 < cols; g0 += group) {
                    float amax = 0;
                    for (int64_t c = g0; c < std::min(cols, g0 + group); ++c)
                        amax = std::max(amax, std::fabs(x[size_t(r * cols + c)]));
                    const float s_i = amax / 448.0f;
                    const double ss = local.at(r, g0);
                    ASSERT_EQ(ss, std::ldexp(1.0, std::min(0, ceil_log2_libm(double(s_i / s)))));
                    // No element of the group leaves E4M3's range: |x| ≤ 448 · s · ss.
                    for (int64_t c = g0; c < std::min(cols, g0 + group); ++c) {
                        ASSERT_LE(std::fabs(x[size_t(r * cols + c)]) / (double(s) * ss),
                                  448.0 * (1 + 1e-6));
                    }
                }
            }
            EXPECT_EQ(measure_fidelity({x.data(), rows, cols}, q).saturated_fraction, 0.0);
        }
    }
}

FidelityMetrics fidelity_of(const std::string& spec, const std::vector<float>& x, int64_t rows,
                            int64_t cols) {
    const QuantizedTensor q =
        make_recipe(spec)->make_quantizer(TensorRole::activation)->quantize({x.data(), rows, cols});
    return measure_fidelity({x.data(), rows, cols}, q);
}

// MOSS reports (geo-mean SNR) per-tensor 26.6 dB < per-group 32.9 dB < two-level 36.0 dB. What
// two-level microscaling fixes is underflow: a shared scale set by outliers pushes the small
// tokens and groups into E4M3's subnormals. On heavy-tailed activations with outlier channels:
//  - flush-to-zero falls per-tensor > 1×128 block-wise > two-level G=32,
//  - the token-level (geo-mean over rows) SNR of two-level G=32 beats per-tensor. Both have the
//    global scale amax/448 (to an ulp), and a local scale 2^-k only refines each group's grid, so
//    no element's error grows; the gain comes from rescued subnormals, which carry little of a
//    token's energy, so it is small and data-dependent (0.13 to 6.2 dB over 300 seeds): the test
//    asserts its sign, not a margin,
//  - 1×128 block-wise beats per-tensor in token-level SNR.
// One part of the reported ordering does not hold here, and this test pins what does: with FP32
// block scales (DeepSeek-V3) every 1×128 group's largest element is cast exactly to ±448, and
// with outlier channels that element carries most of the group's energy, so block-wise 1×128
// beats two-level G=32 by several dB of token-level SNR (docs/numerics.md, "MOSS ordering").
TEST(Moss, ReportedOrderingOnHeavyTailedActivations) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    const int64_t rows = 256, cols = 4096;
    const std::vector<float> x = heavy_tailed_activations(rows, cols, seed);
    const FidelityMetrics per_tensor = fidelity_of("te-current:format=e4m3", x, rows, cols);
    const FidelityMetrics block_1x128 = fidelity_of("blockwise", x, rows, cols);
    const FidelityMetrics two_level = fidelity_of("moss:group=32", x, rows, cols);
    std::printf("%-22s %8s %12s %10s\n", "", "SNR dB", "row SNR dB", "flushed %");
    for (auto [name, m] : {std::pair<const char*, const FidelityMetrics&>{"per-tensor", per_tensor},
                           {"block-wise 1x128", block_1x128},
                           {"two-level G=32", two_level}})
        std::printf("%-22s %8.2f %12.2f %10.4f\n", name, m.snr_db, m.snr_rows_db,
                    100 * m.flushed_fraction);

    EXPECT_GT(per_tensor.flushed_fraction, 10 * block_1x128.flushed_fraction);
    EXPECT_GT(block_1x128.flushed_fraction, two_level.flushed_fraction);
    EXPECT_GT(two_level.snr_rows_db, per_tensor.snr_rows_db);
    EXPECT_GT(block_1x128.snr_rows_db, per_tensor.snr_rows_db + 3.0);
    EXPECT_GT(block_1x128.snr_rows_db, two_level.snr_rows_db + 3.0); // the deviation from the paper
}

// The cost of the power-of-two local scale against an FP32 scale per group of the same size
// (docs/numerics.md has the table): E4M3's relative precision does not depend on the scale, so
// the two flush alike; the FP32 scale gains only by making each group's largest element exact.
TEST(Moss, PowerOfTwoLocalScalesFlushNoMoreThanFp32GroupScales) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    const int64_t rows = 128, cols = 4096;
    const std::vector<float> x = heavy_tailed_activations(rows, cols, seed);
    for (int64_t g : {32, 128}) {
        const FidelityMetrics two_level =
            fidelity_of("moss:group=" + std::to_string(g), x, rows, cols);
        const FidelityMetrics fp32 =
            fidelity_of("blockwise:group=" + std::to_string(g), x, rows, cols);
        std::printf("G=%-4lld two-level %.2f dB (flushed %.4f%%) | FP32 per-group %.2f dB (flushed "
                    "%.4f%%)\n",
                    static_cast<long long>(g), two_level.snr_db, 100 * two_level.flushed_fraction,
                    fp32.snr_db, 100 * fp32.flushed_fraction);
        // A two-level group scale s·ss_i lies in [s_i, 2·s_i): at most one binade coarser.
        EXPECT_LE(two_level.flushed_fraction, 2 * fp32.flushed_fraction + 1e-5);
        EXPECT_EQ(two_level.saturated_fraction, 0.0);
    }
}

} // namespace
} // namespace octet
