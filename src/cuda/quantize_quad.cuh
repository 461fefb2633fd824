// The four-value steps of the quantization kernels, where a thread holds four values of a group:
// their finite amax and their codes under one scale, by numerics/scaling.h's rules.
#pragma once

#include <cstdint>

#include "numerics/scaling.h"

namespace octet::cuda {

__device__ __forceinline__ float finite_amax4(float m, const float4& v) {
    return finite_amax(finite_amax(finite_amax(finite_amax(m, v.x), v.y), v.z), v.w);
}

// max(a, b) that propagates NaN (PTX max.NaN; |·| of an operand folds into the instruction): a
// running max of |v| is NaN or +Inf exactly where one of its values is not finite, so a group
// needs no separate test per value to find out.
__device__ __forceinline__ float max_nan(float a, float b) {
    float r;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

__device__ __forceinline__ float max_abs_nan4(float m, const float4& v) {
    return max_nan(m, max_nan(max_nan(fabsf(v.x), fabsf(v.y)), max_nan(fabsf(v.z), fabsf(v.w))));
}

// The codes of four values under one scale, byte j the code of value j: cast_scaled four times.
// Out of line: the paths below take it only for formats other than FP8 or for NaN and ±Inf, and
// the general codec inlined at each of a kernel's unrolled casts fills the instruction cache.
inline __device__ __noinline__ uint32_t cast_each_packed(float a, float b, float c, float d,
                                                         float scale, Format format) {
    return uint32_t(cast_scaled(a, scale, format)) | uint32_t(cast_scaled(b, scale, format)) << 8 |
           uint32_t(cast_scaled(c, scale, format)) << 16 |
           uint32_t(cast_scaled(d, scale, format)) << 24;
}

// The same for four finite values: for FP8, two hardware conversions of a pair each
// (cvt.rn.satfinite, as encode_saturate does one by one) and no per-value branches. The
// quantization kernels are bound by instruction issue, not memory, without it.
__device__ __forceinline__ uint32_t cast_finite_packed(float a, float b, float c, float d,
                                                       float scale, Format format) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    unsigned short lo, hi; // cvt puts its first operand in the high byte
    if (format == Format::e4m3) {
        asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(lo) : "f"(b * scale), "f"(a * scale));
        asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(hi) : "f"(d * scale), "f"(c * scale));
        return uint32_t(lo) | uint32_t(hi) << 16;
    }
    if (format == Format::e5m2) {
        asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(lo) : "f"(b * scale), "f"(a * scale));
        asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(hi) : "f"(d * scale), "f"(c * scale));
        return uint32_t(lo) | uint32_t(hi) << 16;
    }
#endif
    return cast_each_packed(a, b, c, d, scale, format);
}

// Any four values: the finite path where all four are finite.
__device__ __forceinline__ uint32_t cast_scaled_packed(float a, float b, float c, float d,
                                                       float scale, Format format) {
    constexpr uint32_t exponent = 0x7F800000u;
    const bool finite =
        (float_to_bits(a) & exponent) != exponent && (float_to_bits(b) & exponent) != exponent &&
        (float_to_bits(c) & exponent) != exponent && (float_to_bits(d) & exponent) != exponent;
    return finite ? cast_finite_packed(a, b, c, d, scale, format)
                  : cast_each_packed(a, b, c, d, scale, format);
}

__device__ __forceinline__ uchar4 cast_scaled4(const float4& v, float scale, Format format) {
    const uint32_t codes = cast_scaled_packed(v.x, v.y, v.z, v.w, scale, format);
    return make_uchar4(uint8_t(codes), uint8_t(codes >> 8), uint8_t(codes >> 16),
                       uint8_t(codes >> 24));
}

} // namespace octet::cuda
