// FP8-LM's precision-decoupled AdamW state (arXiv 2310.18313 §3.3) in a backend's memory: the
// master weights, m and v each in a storage format (numerics/storage_format.h) with one
// power-of-two scale per parameter tensor, and the weight gradients rounded through their own
// format before the step. Ops::adamw_step_scaled runs one step; both backends call
// scaled_adamw_element below for every parameter, so they compute the same values.
#pragma once

#include <cstdint>

#include "numerics/storage_format.h"
#include "ops/adamw_update.h"

namespace octet {

// One optimizer tensor over all parameters: codes in the parameters' flat layout,
// storage_format_bytes(format) each, and scale_inv[j] for the j-th span (tensor).
struct ScaledTensors {
    StorageFormat format = StorageFormat::fp32;
    void* codes = nullptr;
    float* scale_inv = nullptr;
};

// Span j of t, starting at parameter `offset`, as a ScaledTensors of its own.
inline ScaledTensors span_of(const ScaledTensors& t, int64_t offset, size_t j) {
    return {t.format, static_cast<uint8_t*>(t.codes) + offset * storage_format_bytes(t.format),
            t.scale_inv + j};
}

struct ScaledAdamWState {
    StorageFormat weight_grad = StorageFormat::fp32;
    // With format fp32 the FP32 parameters are the master themselves: codes stay unused.
    ScaledTensors master;
    ScaledTensors m, v;
};

struct AdamWValues {
    float w, m, v;
};

// Parameter i of span j after one AdamW update from the stored state, before it is stored again;
// w is the FP32 parameter, g its gradient (already rounded through weight_grad).
OCTET_HD AdamWValues scaled_adamw_element(const ScaledAdamWState& s, int64_t i, int64_t j, float w,
                                          float g, const AdamWHyper& h, bool decay) {
    AdamWValues r{w, load_element(s.m.format, s.m.codes, i, s.m.scale_inv[j]),
                  load_element(s.v.format, s.v.codes, i, s.v.scale_inv[j])};
    if (s.master.format != StorageFormat::fp32)
        r.w = load_element(s.master.format, s.master.codes, i, s.master.scale_inv[j]);
    adamw_update(r.w, g, r.m, r.v, h, decay);
    return r;
}

} // namespace octet
