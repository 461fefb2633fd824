// How an optimizer-side tensor is stored (FP8-LM, arXiv 2310.18313 §3.3): FP32 or BF16 as is, or
// FP16/E4M3/E5M2 codes with one power-of-two scale per tensor, recomputed from the tensor's amax
// at every store so that the values use the format's whole range:
//     scale = 2^k, the largest with amax · 2^k ≤ fmt_max; x ≈ decode(code) · 2^-k.
// An amax of 0 or non-finite keeps scale 1 (numerics/scaling.h). Codes saturate: a moment that
// outgrew its scale between two stores cannot become Inf. Host and device share these helpers, so
// both backends store the same codes.
#pragma once

#include <cstdint>

#include "common/hostdevice.h"
#include "numerics/scaling.h"

namespace octet {

enum class StorageFormat : uint8_t { fp32, fp16, bf16, e4m3, e5m2 };

OCTET_HD int storage_format_bytes(StorageFormat f) {
    return f == StorageFormat::fp32                               ? 4
           : f == StorageFormat::fp16 || f == StorageFormat::bf16 ? 2
                                                                  : 1;
}

// The element format of a scaled storage (not FP32).
OCTET_HD Format storage_element_format(StorageFormat f) {
    return f == StorageFormat::fp16   ? Format::fp16
           : f == StorageFormat::bf16 ? Format::bf16
           : f == StorageFormat::e4m3 ? Format::e4m3
                                      : Format::e5m2;
}

// The scale of a tensor with this finite amax. FP32 and BF16 storage are not scaled: BF16 has
// FP32's exponent range, so a scale would only move values within it (DeepSeek-V3 keeps AdamW's
// moments in plain BF16).
OCTET_HD BlockScale storage_scale(StorageFormat f, float amax) {
    if (f == StorageFormat::fp32 || f == StorageFormat::bf16) return unit_scale();
    return scale_from_amax(amax, format_max(storage_element_format(f)), 0, true);
}

// Element i of a flat array of codes of format f (FP32: the float itself).
OCTET_HD void store_element(StorageFormat f, void* codes, int64_t i, float x, float scale) {
    if (f == StorageFormat::fp32) {
        static_cast<float*>(codes)[i] = x;
        return;
    }
    const uint32_t code = encode_saturate(x * scale, storage_element_format(f));
    if (storage_format_bytes(f) == 2)
        static_cast<uint16_t*>(codes)[i] = uint16_t(code);
    else
        static_cast<uint8_t*>(codes)[i] = uint8_t(code);
}

OCTET_HD float load_element(StorageFormat f, const void* codes, int64_t i, float scale_inv) {
    if (f == StorageFormat::fp32) return static_cast<const float*>(codes)[i];
    const uint32_t code = storage_format_bytes(f) == 2 ? static_cast<const uint16_t*>(codes)[i]
                                                       : static_cast<const uint8_t*>(codes)[i];
    return decode(code, storage_element_format(f)) * scale_inv;
}

// x stored and loaded back under scale s (FP8-LM's rounding of weight gradients).
OCTET_HD float round_through_storage(StorageFormat f, float x, BlockScale s) {
    if (f == StorageFormat::fp32) return x;
    const Format e = storage_element_format(f);
    return decode(encode_saturate(x * s.scale, e), e) * s.scale_inv;
}

} // namespace octet
