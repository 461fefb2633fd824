// Number formats: E4M3, E5M2, FP16 and BF16 encoded from float with round-to-nearest-even, and
// decoded exactly. One generic minifloat codec serves all four; it is header-only and compiled for
// host and device, so the CPU oracle and the CUDA kernels agree bit for bit.
//
// Conventions (checked against CUDA's cuda_fp8.h / cuda_fp16.h / cuda_bf16.h in the tests):
// - E4M3 is OCP "FN": bias 7, max 448, no infinities, NaN = S.1111.111.
// - E5M2, FP16 and BF16 are IEEE-like: all-ones exponent holds Inf (mantissa 0) and NaN.
// - NaN in → the format's canonical NaN, sign and payload dropped (as CUDA does): 0x7F for E4M3
//   and E5M2, 0x7FFF for FP16 and BF16.
// - Overflow::saturate (CUDA's __NV_SATFINITE): anything beyond the largest finite value,
//   ±Inf included, becomes ±max finite.
// - Overflow::ieee (CUDA's __NV_NOSAT): a value at or above max + half an ulp becomes ±Inf, or NaN
//   (with the sign kept) in E4M3, which has no Inf; ±Inf stays ±Inf (E4M3: NaN).
#pragma once

#include <cstdint>
#include <cstring>

#include "common/hostdevice.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace octet {

enum class Format : uint8_t { e4m3, e5m2, fp16, bf16 };

enum class Overflow : uint8_t { saturate, ieee };

struct FormatSpec {
    int mantissa_bits;
    int exponent_bias;
    uint32_t max_finite_code; // magnitude bits of the largest finite value
    bool has_inf;
    int sign_shift; // 7 for 8-bit formats, 15 for 16-bit ones
};

OCTET_HD FormatSpec format_spec(Format f) {
    switch (f) {
    case Format::e4m3:
        return {3, 7, 0x7Eu, false, 7};
    case Format::e5m2:
        return {2, 15, 0x7Bu, true, 7};
    case Format::fp16:
        return {10, 15, 0x7BFFu, true, 15};
    default:
        return {7, 127, 0x7F7Fu, true, 15}; // bf16
    }
}

// Largest finite value of each format, as a float.
OCTET_HD float format_max(Format f) {
    switch (f) {
    case Format::e4m3:
        return 448.0f;
    case Format::e5m2:
        return 57344.0f;
    case Format::fp16:
        return 65504.0f;
    default:
        return 3.38953139e38f; // bf16: (2 - 2^-7) * 2^127
    }
}

OCTET_HD uint32_t float_to_bits(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
#endif
}

OCTET_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
#endif
}

// 2^k as a float, exact for k in [-149, 127] (subnormals included); built from bits, no libm.
OCTET_HD float exp2i(int k) {
    if (k >= -126) return bits_to_float(uint32_t(k + 127) << 23);
    return bits_to_float(1u << (k + 149));
}

// floor(log2(a)) for finite a > 0, exact (float subnormals included).
OCTET_HD int floor_log2(float a) {
    uint32_t u = float_to_bits(a) & 0x7FFFFFFFu;
    int field = int(u >> 23);
    if (field != 0) return field - 127;
    int msb = 31;
    while (!(u >> msb)) --msb;
    return msb - 149;
}

OCTET_HD bool is_power_of_two(float a) {
    uint32_t u = float_to_bits(a) & 0x7FFFFFFFu;
    if (u >> 23) return (u & 0x7FFFFFu) == 0;
    return u != 0 && (u & (u - 1)) == 0;
}

// ceil(log2(a)) for finite a > 0, exact.
OCTET_HD int ceil_log2(float a) {
    return floor_log2(a) + (is_power_of_two(a) ? 0 : 1);
}

// sig / 2^shift rounded to nearest, ties to even. sig < 2^24.
OCTET_HD uint32_t shift_right_rne(uint32_t sig, int shift) {
    if (shift == 0) return sig;
    if (shift > 25) return 0; // sig < 2^24 < half of 2^26: always below the half-way point
    uint32_t q = sig >> shift;
    uint32_t rem = sig & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return q;
}

OCTET_HD uint32_t nan_code(Format f) {
    return f == Format::e4m3 || f == Format::e5m2 ? 0x7Fu : 0x7FFFu;
}

// float → code of format f (in the low 8 or 16 bits), round-to-nearest-even.
OCTET_HD uint32_t encode(float x, Format f, Overflow overflow) {
    const FormatSpec s = format_spec(f);
    const uint32_t bits = float_to_bits(x);
    const uint32_t sign = (bits >> 31) << s.sign_shift;
    const uint32_t a = bits & 0x7FFFFFFFu;
    const uint32_t overflow_code = overflow == Overflow::saturate ? s.max_finite_code
                                   : s.has_inf
                                       ? s.max_finite_code + 1 // the all-ones exponent, mantissa 0
                                       : 0x7Fu;                // E4M3 NaN
    if (a > 0x7F800000u) return nan_code(f);
    if (a == 0x7F800000u) return sign | overflow_code;
    if (a == 0) return sign;
    if (f == Format::bf16) {
        // BF16 shares float's exponent range: rounding drops 16 mantissa bits (ties to even),
        // subnormals included; a carry into the exponent field is the correct result.
        const uint32_t r = (a + 0x7FFFu + ((a >> 16) & 1u)) >> 16;
        return sign | (r > s.max_finite_code ? overflow_code : r);
    }

    // |x| = sig * 2^(e - 23)
    const int field = int(a >> 23);
    const uint32_t sig = field ? (a & 0x7FFFFFu) | 0x800000u : a;
    const int e = field ? field - 127 : -126;
    const int value_exp = field ? e : floor_log2(bits_to_float(a));
    const int min_normal_exp = 1 - s.exponent_bias;
    // The quantum (weight of the last kept mantissa bit) of the target at this magnitude.
    int quantum_exp = (value_exp > min_normal_exp ? value_exp : min_normal_exp) - s.mantissa_bits;
    uint32_t n = shift_right_rne(sig, quantum_exp - (e - 23));
    if (n >> (s.mantissa_bits + 1)) { // rounding carried into a new binade
        n >>= 1;
        ++quantum_exp;
    }
    // n < 2^M: subnormal (exponent field 0); otherwise the field is quantum_exp + M + bias.
    const uint32_t one = 1u << s.mantissa_bits;
    const uint32_t magnitude =
        n < one ? n
                : (uint32_t(quantum_exp + s.mantissa_bits + s.exponent_bias) << s.mantissa_bits) |
                      (n - one);
    if (magnitude > s.max_finite_code) return sign | overflow_code;
    return sign | magnitude;
}

// code → float, exact. NaN codes give a quiet NaN, Inf codes ±Inf.
OCTET_HD float decode(uint32_t code, Format f) {
    const FormatSpec s = format_spec(f);
    const uint32_t sign_bit = (code >> s.sign_shift) & 1u;
    const uint32_t magnitude = code & ((1u << s.sign_shift) - 1u);
    const uint32_t mantissa = magnitude & ((1u << s.mantissa_bits) - 1u);
    const int field = int(magnitude >> s.mantissa_bits);
    const int all_ones = (1 << (s.sign_shift - s.mantissa_bits)) - 1;
    float v;
    if (!s.has_inf && magnitude == 0x7Fu) {
        v = bits_to_float(0x7FC00000u);
    } else if (s.has_inf && field == all_ones) {
        v = bits_to_float(mantissa ? 0x7FC00000u : 0x7F800000u);
    } else if (field == 0) {
        v = float(mantissa) * exp2i(1 - s.exponent_bias - s.mantissa_bits);
    } else {
        v = float(mantissa | (1u << s.mantissa_bits)) *
            exp2i(field - s.exponent_bias - s.mantissa_bits);
    }
    return sign_bit ? -v : v;
}

// encode(x, f, Overflow::saturate). On Hopper, the hardware's conversion: cvt.rn.satfinite for the
// FP8 formats, and the IEEE conversion with ±Inf turned into ±max for FP16 and BF16; one or two
// instructions instead of the codec's integer arithmetic, and the same code for every float but
// NaN payloads (tests/cuda/test_cast.cu sweeps all 2^32).
OCTET_HD uint32_t encode_saturate(float x, Format f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    unsigned short code;
    switch (f) {
    case Format::e4m3:
        asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %1;" : "=h"(code) : "f"(x));
        return code & 0xFFu;
    case Format::e5m2:
        asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %1;" : "=h"(code) : "f"(x));
        return code & 0xFFu;
    case Format::fp16:
        code = __half_as_ushort(__float2half_rn(x));
        return (code & 0x7FFFu) == 0x7C00u ? (code & 0x8000u) | 0x7BFFu : code;
    default:
        code = __bfloat16_as_ushort(__float2bfloat16_rn(x));
        return (code & 0x7FFFu) == 0x7F80u ? (code & 0x8000u) | 0x7F7Fu : code;
    }
#else
    return encode(x, f, Overflow::saturate);
#endif
}

// Round x to the nearest value of format f (encode then decode).
OCTET_HD float round_to_format(float x, Format f, Overflow overflow) {
    return decode(encode(x, f, overflow), f);
}

} // namespace octet
