// E8M0 (OCP UE8M0): an unsigned power-of-two scale, value 2^(e - 127) for e in [0, 254];
// e = 0xFF is NaN; there is no sign and no zero. Used by MX block scales and MOSS local scales.
#pragma once

#include <cstdint>

#include "numerics/formats.h"

namespace octet {

inline constexpr int e8m0_min_exponent = -127;
inline constexpr int e8m0_max_exponent = 127;
inline constexpr uint8_t e8m0_nan = 0xFF;

OCTET_HD int clamp_e8m0_exponent(int k) {
    return k < e8m0_min_exponent   ? e8m0_min_exponent
           : k > e8m0_max_exponent ? e8m0_max_exponent
                                   : k;
}

// The E8M0 code of 2^k, k clamped to the representable range [-127, 127].
OCTET_HD uint8_t e8m0_from_exponent(int k) {
    return uint8_t(clamp_e8m0_exponent(k) + 127);
}

OCTET_HD int e8m0_exponent(uint8_t code) {
    return int(code) - 127;
}

OCTET_HD float e8m0_decode(uint8_t code) {
    return code == e8m0_nan ? bits_to_float(0x7FC00000u) : exp2i(int(code) - 127);
}

// Encode a positive float as E8M0, rounding the exponent down (floor) or up (ceil). NaN, Inf,
// zero and negatives give NaN: none of them is a scale.
enum class E8M0Rounding : uint8_t { down, up };

OCTET_HD uint8_t e8m0_encode(float x, E8M0Rounding rounding) {
    if (!(x > 0.0f) || x > 3.4028235e38f) return e8m0_nan;
    const int k = rounding == E8M0Rounding::down ? floor_log2(x) : ceil_log2(x);
    return e8m0_from_exponent(k);
}

} // namespace octet
