// Scale rules shared by every recipe, on host and device: from a block's amax to the multiplier
// applied before the FP8 cast (`scale`) and the one that maps codes back (`scale_inv`).
//
//   per-tensor / row-wise / block-wise (TE, DeepSeek-V3):
//       scale = (fmt_max / amax) / 2^margin, scale_inv = 1 / scale            (FP32 scales)
//       scale = 2^k with k the largest integer with amax · 2^k ≤ fmt_max, minus margin
//                                                                        (power-of-two scales)
//   MX (OCP MX v1.0 §6.3):  scale_inv = 2^(floor(log2 amax) − emax_elem), E8M0
//   MOSS two-level:         see moss_local_exponent below.
//
// Decisions (docs/numerics.md): amax is taken over finite elements only, so one NaN or Inf does not
// wipe out a whole block; amax = 0 gives scale 1; an FP32 scale that would overflow is clamped to
// FLT_MAX (as TE does); power-of-two exponents are clamped to E8M0's range [-127, 127].
#pragma once

#include <cmath>

#include "common/hostdevice.h"
#include "numerics/e8m0.h"
#include "numerics/formats.h"

namespace octet {

struct BlockScale {
    float scale;     // multiply before the cast
    float scale_inv; // multiply the decoded code to dequantize
};

OCTET_HD BlockScale unit_scale() {
    return {1.0f, 1.0f};
}

OCTET_HD BlockScale pow2_scale(int k) {
    k = clamp_e8m0_exponent(k);
    return {exp2i(k), exp2i(-k)};
}

// The largest k with amax · 2^k ≤ fmt_max; exact (a product by 2^k is exact in float).
OCTET_HD int max_pow2_exponent(float amax, float fmt_max) {
    const int k = floor_log2(fmt_max) - floor_log2(amax);
    // Beyond E8M0's range the result is clamped by pow2_scale anyway (and 2^k would not be a
    // float).
    if (k > e8m0_max_exponent) return k;
    return amax * exp2i(k) > fmt_max ? k - 1 : k;
}

// max(m, |v|), skipping NaN and ±Inf: the amax rule of every recipe.
OCTET_HD float finite_amax(float m, float v) {
    const float a = fabsf(v);
    return a <= 3.4028235e38f && a > m ? a : m;
}

OCTET_HD bool usable_amax(float amax) {
    return amax > 0.0f && amax <= 3.4028235e38f;
}

OCTET_HD BlockScale scale_from_amax(float amax, float fmt_max, int margin, bool power_of_two) {
    if (!usable_amax(amax)) return unit_scale();
    if (power_of_two) return pow2_scale(max_pow2_exponent(amax, fmt_max) - margin);
    float scale = (fmt_max / amax) / exp2i(margin);
    if (scale > 3.4028235e38f) scale = 3.4028235e38f;
    return {scale, 1.0f / scale};
}

// One scale for a tensor known only by a bound on its amax (MOSS's predicted weight bound):
// scale_from_amax of the bound rounded up to a float, so that no element of the tensor exceeds
// fmt_max once scaled.
OCTET_HD BlockScale scale_from_bound(double bound, float fmt_max) {
    float b = float(bound);
    if (double(b) < bound) b = bits_to_float(float_to_bits(b) + 1); // b > 0 here
    return scale_from_amax(b, fmt_max, 0, false);
}

// OCP MX: the largest power of two of the element format is 2^emax_elem (E4M3: 256 = 2^8, E5M2:
// 2^15); the shared scale aligns the block's largest exponent with it. Values of the block in
// (fmt_max, 2 · 2^emax_elem) saturate, as the specification says.
OCTET_HD int mx_element_emax(Format f) {
    return floor_log2(format_max(f));
}

OCTET_HD BlockScale mx_scale_from_amax(float amax, Format f) {
    if (!usable_amax(amax)) return unit_scale();
    return pow2_scale(-(floor_log2(amax) - mx_element_emax(f)));
}

// MOSS two-level microscaling (arXiv 2511.05811): s_i = amax_i / fmt_max per group, global
// s = max_i s_i, local ss_i = 2^ceil(log2(s_i / s)) ≤ 1. Returns the exponent of ss_i (≤ 0).
// A group of zeros (s_i = 0) takes exponent 0: any scale represents it exactly.
OCTET_HD int moss_local_exponent(float group_s, float global_s) {
    if (!(group_s > 0.0f) || !(global_s > 0.0f)) return 0;
    const int k = ceil_log2(group_s / global_s);
    return clamp_e8m0_exponent(k > 0 ? 0 : k);
}

// The multiplier and the local scale of one MOSS group, given the group's s_i and the global s of
// its coarse block (0 when the block is all zeros: then any scale is exact and s = 1 is used).
// Clamped so that neither 1/s nor the product overflows float.
struct TwoLevelScale {
    float scale;           // multiply before the cast: (1/s) · 2^-k
    float local_scale_inv; // the E8M0 value 2^k, k ≤ 0
};

OCTET_HD float moss_global_scale(float max_group_s) {
    return max_group_s > 0.0f ? max_group_s : 1.0f;
}

OCTET_HD TwoLevelScale moss_group_scale(float group_s, float global_s) {
    const float inv_s = fminf(1.0f / global_s, 3.4028235e38f);
    const int k = moss_local_exponent(group_s, global_s);
    return {fminf(inv_s * exp2i(-k), 3.4028235e38f), exp2i(k)};
}

// NaN and ±Inf through the codec, out of line: a kernel casting from registers inlines
// cast_scaled dozens of times, and the codec's general path in every copy overflows the
// instruction cache.
OCTET_HD_OUTLINED uint32_t encode_non_finite(float v, Format f) {
    return encode(v, f, Overflow::ieee);
}

// Cast one scaled value the way every recipe does: finite values saturate (a delayed or predicted
// scale may be stale), while NaN and ±Inf stay non-finite (E4M3: NaN) so an overflow upstream
// remains visible downstream instead of turning into ±max.
OCTET_HD uint8_t cast_scaled(float x, float scale, Format f) {
    const float v = x * scale;
    const bool finite = (float_to_bits(x) & 0x7F800000u) != 0x7F800000u;
    return uint8_t(finite ? encode_saturate(v, f) : encode_non_finite(v, f));
}

} // namespace octet
