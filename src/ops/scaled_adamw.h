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
// w holds the FP32 parameters, read only where they are the master (a scaled master replaces
// them, and not reading w saves 4 of the 13 bytes a GPU pass moves per parameter); g is the
// gradient, already rounded through weight_grad.
OCTET_HD AdamWValues scaled_adamw_element(const ScaledAdamWState& s, int64_t i, int64_t j,
                                          const float* w, float g, const AdamWHyper& h,
                                          bool decay) {
    AdamWValues r{0.0f, load_element(s.m.format, s.m.codes, i, s.m.scale_inv[j]),
                  load_element(s.v.format, s.v.codes, i, s.v.scale_inv[j])};
    r.w = s.master.format == StorageFormat::fp32
              ? w[i]
              : load_element(s.master.format, s.master.codes, i, s.master.scale_inv[j]);
    adamw_update(r.w, g, r.m, r.v, h, decay);
    return r;
}

} // namespace octet
