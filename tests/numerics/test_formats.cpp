// Bit-exact tests of the format codecs (numerics/formats.h, numerics/e8m0.h).
// Oracles: (1) a brute-force nearest-value search over every finite code in float64, with ties to
// the even code; (2) CUDA's own host conversions (cuda_fp8.h, cuda_fp16.h, cuda_bf16.h) where the
// toolkit headers are available.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/rng.h"
#include "numerics/e8m0.h"
#include "numerics/formats.h"

#if defined(OCTET_HAVE_CUDA_HEADERS)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#endif

namespace octet {
namespace {

constexpr Format all_formats[] = {Format::e4m3, Format::e5m2, Format::fp16, Format::bf16};
constexpr Overflow both_modes[] = {Overflow::saturate, Overflow::ieee};

uint32_t code_count(Format f) {
    return format_spec(f).sign_shift == 7 ? 256u : 65536u;
}
uint32_t sign_bit(Format f) {
    return 1u << format_spec(f).sign_shift;
}

// The reference: every non-negative finite value of the format with its code, ascending.
struct Grid {
    std::vector<double> values;
    std::vector<uint32_t> codes;
};

Grid finite_grid(Format f) {
    Grid g;
    for (uint32_t c = 0; c <= format_spec(f).max_finite_code; ++c) {
        g.values.push_back(double(decode(c, f)));
        g.codes.push_back(c);
    }
    return g;
}

// Round-to-nearest-even by search, in float64; overflow as the header documents.
uint32_t reference_encode(float xf, Format f, Overflow mode, const Grid& g) {
    const FormatSpec s = format_spec(f);
    const uint32_t sign = std::signbit(xf) ? sign_bit(f) : 0u;
    const uint32_t overflow_code = mode == Overflow::saturate ? s.max_finite_code
                                   : s.has_inf                ? s.max_finite_code + 1
                                                              : 0x7Fu;
    const double x = std::fabs(double(xf));
    if (std::isinf(x)) return sign | overflow_code;
    const double max = g.values.back();
    const double ulp_at_max = max - g.values[g.values.size() - 2];
    if (x > max) {
        // The virtual next value max + ulp has the code max_code + 1: odd or even decides a tie.
        const double mid = max + ulp_at_max / 2;
        const bool next_is_even = ((s.max_finite_code + 1) & 1u) == 0;
        if (x < mid || (x == mid && !next_is_even)) return sign | s.max_finite_code;
        return sign | overflow_code;
    }
    auto hi = std::lower_bound(g.values.begin(), g.values.end(), x);
    const size_t i = size_t(hi - g.values.begin());
    if (*hi == x) return sign | g.codes[i];
    const double d_lo = x - g.values[i - 1], d_hi = g.values[i] - x;
    if (d_lo < d_hi) return sign | g.codes[i - 1];
    if (d_hi < d_lo) return sign | g.codes[i];
    return sign | ((g.codes[i] & 1u) ? g.codes[i - 1] : g.codes[i]);
}

bool is_nan_code(uint32_t code, Format f) {
    return std::isnan(decode(code, f));
}

TEST(Formats, EveryCodeRoundTrips) {
    for (Format f : all_formats) {
        for (uint32_t c = 0; c < code_count(f); ++c) {
            const float v = decode(c, f);
            for (Overflow mode : both_modes) {
                const uint32_t back = encode(v, f, mode);
                if (std::isnan(v)) {
                    EXPECT_TRUE(is_nan_code(back, f)) << "format " << int(f) << " code " << c;
                } else if (std::isinf(v) && mode == Overflow::saturate) {
                    EXPECT_EQ(back, (c & sign_bit(f)) | format_spec(f).max_finite_code);
                } else {
                    ASSERT_EQ(back, c) << "format " << int(f) << " code " << c;
                }
            }
        }
    }
}

TEST(Formats, DecodedConstantsMatchTheSpecifications) {
    EXPECT_EQ(decode(0x7E, Format::e4m3), 448.0f);
    EXPECT_EQ(decode(0x08, Format::e4m3), std::ldexp(1.0f, -6)); // min normal
    EXPECT_EQ(decode(0x01, Format::e4m3), std::ldexp(1.0f, -9)); // min subnormal
    EXPECT_TRUE(std::isnan(decode(0x7F, Format::e4m3)));
    EXPECT_TRUE(std::isnan(decode(0xFF, Format::e4m3)));
    EXPECT_EQ(decode(0x7B, Format::e5m2), 57344.0f);
    EXPECT_EQ(decode(0x04, Format::e5m2), std::ldexp(1.0f, -14));
    EXPECT_EQ(decode(0x01, Format::e5m2), std::ldexp(1.0f, -16));
    EXPECT_EQ(decode(0x7C, Format::e5m2), std::numeric_limits<float>::infinity());
    EXPECT_EQ(decode(0xFC, Format::e5m2), -std::numeric_limits<float>::infinity());
    EXPECT_EQ(decode(0x7BFF, Format::fp16), 65504.0f);
    EXPECT_EQ(decode(0x0001, Format::fp16), std::ldexp(1.0f, -24));
    EXPECT_EQ(decode(0x7F7F, Format::bf16), format_max(Format::bf16));
    EXPECT_EQ(decode(0x0001, Format::bf16), std::ldexp(1.0f, -133));
    for (Format f : all_formats)
        EXPECT_EQ(decode(format_spec(f).max_finite_code, f), format_max(f));
}

// Each boundary of each format, probed just below, at, and just above, and the half-way points.
TEST(Formats, BoundariesMatchTheReference) {
    for (Format f : all_formats) {
        const Grid g = finite_grid(f);
        const double max = g.values.back();
        const double ulp_max = max - g.values[g.values.size() - 2];
        const double min_sub = g.values[1];
        const double min_normal = double(decode(1u << format_spec(f).mantissa_bits, f));
        const double probes[] = {max,           max + ulp_max / 2, max + ulp_max / 4,
                                 max + ulp_max, min_normal,        min_normal - min_sub / 2,
                                 min_sub,       min_sub / 2,       min_sub * 0.75,
                                 min_sub * 1.5, min_sub / 4,       max * 4};
        for (double p : probes) {
            for (float base : {float(p), std::nextafter(float(p), 0.0f),
                               std::nextafter(float(p), std::numeric_limits<float>::max())}) {
                for (float x : {base, -base}) {
                    for (Overflow mode : both_modes) {
                        EXPECT_EQ(encode(x, f, mode), reference_encode(x, f, mode, g))
                            << "format " << int(f) << " x=" << x << " mode " << int(mode);
                    }
                }
            }
        }
    }
}

TEST(Formats, TiesRoundToEven) {
    // E4M3 around 1: spacing 1/8. 1 + 1/16 is a tie between 1 (even) and 1.125 (odd) → 1.
    EXPECT_EQ(round_to_format(1.0625f, Format::e4m3, Overflow::ieee), 1.0f);
    // 1.125 + 1/16 is a tie between 1.125 (odd) and 1.25 (even) → 1.25.
    EXPECT_EQ(round_to_format(1.1875f, Format::e4m3, Overflow::ieee), 1.25f);
    // Half of the smallest E4M3 subnormal is a tie between 0 (even) and 2^-9 → 0.
    EXPECT_EQ(round_to_format(std::ldexp(1.0f, -10), Format::e4m3, Overflow::ieee), 0.0f);
    // 1.5 × min subnormal is a tie between code 1 (odd) and code 2 → 2 × 2^-9.
    EXPECT_EQ(round_to_format(1.5f * std::ldexp(1.0f, -9), Format::e4m3, Overflow::ieee),
              std::ldexp(1.0f, -8));
    // E4M3 464 is the tie between 448 (mantissa 110, even) and the NaN slot → 448, even in ieee.
    EXPECT_EQ(encode(464.0f, Format::e4m3, Overflow::ieee), 0x7Eu);
    EXPECT_EQ(encode(464.00003f, Format::e4m3, Overflow::ieee), 0x7Fu);
    // E5M2 61440 is the tie between 57344 (mantissa 11, odd) and 2^16 → Inf.
    EXPECT_EQ(encode(61440.0f, Format::e5m2, Overflow::ieee), 0x7Cu);
    EXPECT_EQ(encode(61439.996f, Format::e5m2, Overflow::ieee), 0x7Bu);
}

TEST(Formats, NanAndInfinityHaveDefinedResultsInEachMode) {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    // saturate: ±Inf → ±max finite; NaN → canonical NaN.
    EXPECT_EQ(encode(inf, Format::e4m3, Overflow::saturate), 0x7Eu);
    EXPECT_EQ(encode(-inf, Format::e4m3, Overflow::saturate), 0xFEu);
    EXPECT_EQ(encode(inf, Format::e5m2, Overflow::saturate), 0x7Bu);
    EXPECT_EQ(encode(-inf, Format::bf16, Overflow::saturate), 0xFF7Fu);
    // ieee: ±Inf stays ±Inf; E4M3 has none, so NaN with the sign kept.
    EXPECT_EQ(encode(inf, Format::e4m3, Overflow::ieee), 0x7Fu);
    EXPECT_EQ(encode(-inf, Format::e4m3, Overflow::ieee), 0xFFu);
    EXPECT_EQ(encode(-inf, Format::e5m2, Overflow::ieee), 0xFCu);
    EXPECT_EQ(encode(inf, Format::fp16, Overflow::ieee), 0x7C00u);
    EXPECT_EQ(encode(inf, Format::bf16, Overflow::ieee), 0x7F80u);
    for (Overflow mode : both_modes) {
        EXPECT_EQ(encode(nan, Format::e4m3, mode), 0x7Fu);
        EXPECT_EQ(encode(-nan, Format::e4m3, mode), 0x7Fu);
        EXPECT_EQ(encode(nan, Format::e5m2, mode), 0x7Fu);
        EXPECT_EQ(encode(nan, Format::fp16, mode), 0x7FFFu);
        EXPECT_EQ(encode(nan, Format::bf16, mode), 0x7FFFu);
    }
    // Overflow of finite values.
    EXPECT_EQ(encode(1e6f, Format::e4m3, Overflow::saturate), 0x7Eu);
    EXPECT_EQ(encode(-1e6f, Format::e4m3, Overflow::ieee), 0xFFu);
    EXPECT_EQ(encode(1e6f, Format::e5m2, Overflow::ieee), 0x7Cu);
    EXPECT_EQ(encode(1e6f, Format::fp16, Overflow::saturate), 0x7BFFu);
    // Signed zero survives.
    EXPECT_EQ(encode(-0.0f, Format::e4m3, Overflow::ieee), 0x80u);
}

TEST(Formats, RandomFloatsMatchTheReference) {
    Rng rng(20261122);
    for (Format f : all_formats) {
        const Grid g = finite_grid(f);
        const int max_exp = floor_log2(format_max(f)) + 2;
        const int min_exp = floor_log2(float(g.values[1])) - 3;
        for (int i = 0; i < 200000; ++i) {
            // Log-uniform magnitudes over the format's range and a little beyond.
            const int k = min_exp + int(rng.next_u64() % uint64_t(max_exp - min_exp + 1));
            const float x =
                std::ldexp(float(1.0 + rng.uniform()), k) * (rng.uniform() < 0.5 ? -1 : 1);
            const Overflow mode = both_modes[i & 1];
            ASSERT_EQ(encode(x, f, mode), reference_encode(x, f, mode, g))
                << "format " << int(f) << " x=" << x;
        }
    }
}

TEST(E8M0, EveryCodeRoundTripsAndNanIsDefined) {
    for (int c = 0; c < 255; ++c) {
        const float v = e8m0_decode(uint8_t(c));
        EXPECT_EQ(v, std::ldexp(1.0f, c - 127));
        EXPECT_EQ(e8m0_encode(v, E8M0Rounding::down), c);
        EXPECT_EQ(e8m0_encode(v, E8M0Rounding::up), c);
    }
    EXPECT_TRUE(std::isnan(e8m0_decode(0xFF)));
    EXPECT_EQ(e8m0_encode(0.0f, E8M0Rounding::up), e8m0_nan);
    EXPECT_EQ(e8m0_encode(-1.0f, E8M0Rounding::up), e8m0_nan);
    EXPECT_EQ(e8m0_encode(std::numeric_limits<float>::quiet_NaN(), E8M0Rounding::up), e8m0_nan);
    EXPECT_EQ(e8m0_encode(3.0f, E8M0Rounding::down), 128);
    EXPECT_EQ(e8m0_encode(3.0f, E8M0Rounding::up), 129);
    EXPECT_EQ(e8m0_encode(1e38f * 10.0f, E8M0Rounding::up), e8m0_nan); // +Inf
}

TEST(E8M0, ExactLogarithmsIncludingSubnormals) {
    EXPECT_EQ(floor_log2(1.0f), 0);
    EXPECT_EQ(ceil_log2(1.0f), 0);
    EXPECT_EQ(floor_log2(3.0f), 1);
    EXPECT_EQ(ceil_log2(3.0f), 2);
    EXPECT_EQ(floor_log2(std::nextafter(2.0f, 0.0f)), 0);
    EXPECT_EQ(ceil_log2(std::nextafter(2.0f, 0.0f)), 1);
    EXPECT_EQ(floor_log2(std::ldexp(1.0f, -149)), -149);
    EXPECT_EQ(floor_log2(std::ldexp(3.0f, -140)), -139);
    EXPECT_EQ(ceil_log2(std::ldexp(3.0f, -140)), -138);
    for (int k = -149; k <= 127; ++k) EXPECT_EQ(exp2i(k), std::ldexp(1.0f, k));
}

#if defined(OCTET_HAVE_CUDA_HEADERS)
uint32_t cuda_encode(float x, Format f, Overflow mode) {
    const __nv_saturation_t sat = mode == Overflow::saturate ? __NV_SATFINITE : __NV_NOSAT;
    switch (f) {
    case Format::e4m3:
        return __nv_cvt_float_to_fp8(x, sat, __NV_E4M3);
    case Format::e5m2:
        return __nv_cvt_float_to_fp8(x, sat, __NV_E5M2);
    case Format::fp16: {
        __half h = __float2half_rn(x);
        uint16_t u;
        std::memcpy(&u, &h, 2);
        return u;
    }
    default: {
        __nv_bfloat16 b = __float2bfloat16_rn(x);
        uint16_t u;
        std::memcpy(&u, &b, 2);
        return u;
    }
    }
}

// A strided sweep over all 2^32 float bit patterns (every 65,521st, about 65k per format and
// mode), compared with CUDA's host conversions. FP16/BF16 are compared in ieee mode only: CUDA's
// __float2half_rn / __float2bfloat16_rn do not saturate.
TEST(Formats, StridedSweepMatchesCudaHostConversions) {
    for (Format f : all_formats) {
        for (Overflow mode : both_modes) {
            if ((f == Format::fp16 || f == Format::bf16) && mode == Overflow::saturate) continue;
            for (uint64_t u = 0; u < (1ull << 32); u += 65521) {
                const float x = bits_to_float(uint32_t(u));
                ASSERT_EQ(encode(x, f, mode), cuda_encode(x, f, mode))
                    << "format " << int(f) << " bits 0x" << std::hex << u;
            }
        }
    }
}

TEST(E8M0, MatchesCudaHostConversionForPositiveFiniteValues) {
    for (uint32_t u = 1; u < 0x7F800000u; u += 8191) {
        const float x = bits_to_float(u);
        EXPECT_EQ(e8m0_encode(x, E8M0Rounding::down),
                  __nv_cvt_float_to_e8m0(x, __NV_SATFINITE, cudaRoundZero));
        EXPECT_EQ(e8m0_encode(x, E8M0Rounding::up),
                  __nv_cvt_float_to_e8m0(x, __NV_SATFINITE, cudaRoundPosInf));
    }
}
#else
TEST(Formats, StridedSweepMatchesCudaHostConversions) {
    GTEST_SKIP() << "skipped: CUDA toolkit headers not found";
}
#endif

} // namespace
} // namespace octet
