// Per-tensor scaled storage of optimizer tensors (see scaled_storage.h).
#include "optim/scaled_storage.h"

#include <cmath>
#include <cstring>

#include "numerics/scaling.h"

namespace octet {

static Format element_format(StorageFormat f) {
    switch (f) {
    case StorageFormat::fp16:
        return Format::fp16;
    case StorageFormat::bf16:
        return Format::bf16;
    case StorageFormat::e4m3:
        return Format::e4m3;
    default:
        return Format::e5m2;
    }
}

ScaledStorage::ScaledStorage(StorageFormat format, int64_t n) : format_(format), n_(n) {
    if (format == StorageFormat::fp32)
        fp32_.assign(size_t(n), 0.0f);
    else
        codes_.assign(size_t(n), 0);
}

void ScaledStorage::store(const float* x) {
    if (format_ == StorageFormat::fp32) {
        std::memcpy(fp32_.data(), x, size_t(n_) * sizeof(float));
        return;
    }
    const Format f = element_format(format_);
    float amax = 0.0f;
    for (int64_t i = 0; i < n_; ++i)
        if (std::isfinite(x[i])) amax = std::max(amax, std::fabs(x[i]));
    const BlockScale s = scale_from_amax(amax, format_max(f), 0, true);
    scale_inv_ = s.scale_inv;
    for (int64_t i = 0; i < n_; ++i)
        codes_[size_t(i)] = uint16_t(encode(x[i] * s.scale, f, Overflow::saturate));
}

void ScaledStorage::load(float* x) const {
    if (format_ == StorageFormat::fp32) {
        std::memcpy(x, fp32_.data(), size_t(n_) * sizeof(float));
        return;
    }
    const Format f = element_format(format_);
    for (int64_t i = 0; i < n_; ++i) x[i] = decode(codes_[size_t(i)], f) * scale_inv_;
}

void round_through(StorageFormat format, float* x, int64_t n) {
    if (format == StorageFormat::fp32) return;
    ScaledStorage s(format, n);
    s.store(x);
    s.load(x);
}

} // namespace octet
