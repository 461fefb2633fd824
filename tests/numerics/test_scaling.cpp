// Scale rules (numerics/scaling.h): power-of-two exactness, TE's FP32 formula, OCP MX, the MOSS
// local exponent, and the cast every recipe uses.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "numerics/scaling.h"
#include "tests/harness/fresh_seed.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::seed_note;

TEST(Scaling, PowerOfTwoScaleIsTheLargestThatFits) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    for (int i = 0; i < 100000; ++i) {
        const float amax = float(std::ldexp(1.0 + rng.uniform(), int(rng.next_u64() % 200) - 100));
        for (Format f : {Format::e4m3, Format::e5m2}) {
            const BlockScale s = scale_from_amax(amax, format_max(f), 0, true);
            // Exactly: amax · scale ≤ max < amax · 2 · scale (in float64, no rounding).
            ASSERT_LE(double(amax) * s.scale, double(format_max(f))) << amax;
            ASSERT_GT(double(amax) * s.scale * 2, double(format_max(f))) << amax;
            ASSERT_EQ(double(s.scale) * s.scale_inv, 1.0);
            ASSERT_TRUE(is_power_of_two(s.scale));
        }
    }
}

TEST(Scaling, MarginAndFp32FormulaFollowTransformerEngine) {
    const BlockScale s = scale_from_amax(3.0f, 448.0f, 0, false);
    EXPECT_EQ(s.scale, 448.0f / 3.0f);
    EXPECT_EQ(s.scale_inv, 1.0f / (448.0f / 3.0f));
    EXPECT_EQ(scale_from_amax(3.0f, 448.0f, 2, false).scale, (448.0f / 3.0f) / 4.0f);
    EXPECT_EQ(scale_from_amax(3.0f, 448.0f, 2, true).scale,
              32.0f); // 2^7 fits (3·128 ≤ 448), margin 2
}

TEST(Scaling, DegenerateAmaxGivesAUsableScale) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    for (bool pow2 : {false, true}) {
        for (float amax : {0.0f, -0.0f, nan, inf, -1.0f}) {
            const BlockScale s = scale_from_amax(amax, 448.0f, 0, pow2);
            EXPECT_EQ(s.scale, 1.0f);
            EXPECT_EQ(s.scale_inv, 1.0f);
        }
        // A subnormal amax: FP32 clamps at FLT_MAX (as TE), power-of-two at E8M0's 2^127.
        const BlockScale tiny = scale_from_amax(std::ldexp(1.0f, -140), 448.0f, 0, pow2);
        EXPECT_TRUE(std::isfinite(tiny.scale));
        EXPECT_GT(tiny.scale_inv, 0.0f);
        EXPECT_TRUE(std::isfinite(tiny.scale_inv));
    }
    EXPECT_EQ(scale_from_amax(std::ldexp(1.0f, -140), 448.0f, 0, true).scale,
              std::ldexp(1.0f, 127));
}

TEST(Scaling, MxScaleFollowsTheOcpRule) {
    // scale_inv = 2^(floor(log2 amax) − 8) for E4M3, 2^(… − 15) for E5M2.
    EXPECT_EQ(mx_scale_from_amax(1.0f, Format::e4m3).scale_inv, std::ldexp(1.0f, -8));
    EXPECT_EQ(mx_scale_from_amax(448.0f, Format::e4m3).scale_inv, 1.0f);
    EXPECT_EQ(mx_scale_from_amax(511.0f, Format::e4m3).scale_inv, 1.0f); // 511 will saturate
    EXPECT_EQ(mx_scale_from_amax(512.0f, Format::e4m3).scale_inv, 2.0f);
    EXPECT_EQ(mx_scale_from_amax(1.0f, Format::e5m2).scale_inv, std::ldexp(1.0f, -15));
    EXPECT_EQ(mx_scale_from_amax(0.0f, Format::e4m3).scale_inv, 1.0f);
}

TEST(Scaling, MossLocalExponentIsTheTightestPowerOfTwoNotBelowTheGroup) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    for (int i = 0; i < 100000; ++i) {
        const float global_s =
            float(std::ldexp(1.0 + rng.uniform(), int(rng.next_u64() % 40) - 20));
        const float group_s =
            float(global_s * std::ldexp(rng.uniform(), -int(rng.next_u64() % 30)));
        if (!(group_s > 0.0f)) continue;
        const int k = moss_local_exponent(group_s, global_s);
        ASSERT_LE(k, 0);
        // ss = 2^k with s·ss ≥ s_i (no group overflows) and s·ss/2 < s_i (the smallest such).
        const double ratio = double(group_s / global_s);
        ASSERT_GE(std::ldexp(1.0, k), ratio);
        ASSERT_LT(std::ldexp(1.0, k - 1), ratio);
    }
    EXPECT_EQ(moss_local_exponent(0.0f, 1.0f), 0);
    EXPECT_EQ(moss_local_exponent(1.0f, 1.0f), 0);
    EXPECT_EQ(moss_local_exponent(0.25f, 1.0f), -2);
    EXPECT_EQ(moss_local_exponent(0.26f, 1.0f), -1);
}

TEST(Scaling, CastKeepsNonFiniteValuesNonFiniteAndSaturatesFiniteOnes) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_TRUE(std::isnan(decode(cast_scaled(nan, 1.0f, Format::e4m3), Format::e4m3)));
    EXPECT_TRUE(std::isnan(decode(cast_scaled(inf, 1.0f, Format::e4m3), Format::e4m3)));
    EXPECT_EQ(decode(cast_scaled(-inf, 1.0f, Format::e5m2), Format::e5m2), -inf);
    EXPECT_EQ(decode(cast_scaled(1000.0f, 1.0f, Format::e4m3), Format::e4m3), 448.0f);
    EXPECT_EQ(decode(cast_scaled(3.0e38f, 10.0f, Format::e5m2), Format::e5m2), 57344.0f);
    EXPECT_EQ(decode(cast_scaled(-3.0f, 2.0f, Format::e4m3), Format::e4m3), -6.0f);
}

} // namespace
} // namespace octet
