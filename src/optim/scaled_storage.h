// A tensor kept by the optimizer in a chosen storage format (FP8-LM, arXiv 2310.18313 §3.3):
// FP32 as is, or FP16/BF16/E4M3/E5M2 codes with one per-tensor power-of-two scale, recomputed from
// the tensor's amax at every store, so the values use the format's whole range:
//     scale = 2^k, the largest with amax · 2^k ≤ fmt_max; x ≈ decode(code) · 2^-k.
// An amax of 0 or non-finite keeps scale 1 (numerics/scaling.h).
#pragma once

#include <cstdint>
#include <vector>

#include "recipe/policy.h"

namespace octet {

class ScaledStorage {
  public:
    ScaledStorage(StorageFormat format, int64_t n);
    void store(const float* x);
    void load(float* x) const;
    StorageFormat format() const { return format_; }
    int64_t size() const { return n_; }
    size_t bytes() const { return size_t(n_) * size_t(storage_format_bytes(format_)); }
    float scale_inv() const { return scale_inv_; }

  private:
    StorageFormat format_;
    int64_t n_;
    std::vector<float> fp32_;
    std::vector<uint16_t> codes_;
    float scale_inv_ = 1.0f;
};

// Round x in place as a store + load through `format` would (FP8-LM's FP8 weight gradients).
void round_through(StorageFormat format, float* x, int64_t n);

} // namespace octet
