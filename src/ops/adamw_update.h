// The AdamW update of one parameter, shared by the CPU backend, the FP8-LM storage path of the
// optimizer and the CUDA kernel, so every backend computes the same arithmetic (PyTorch's order):
// the gradient is scaled by the clipping factor, the moments updated, then w ← w·(1 − lr·wd) and
// w ← w − lr · m̂ / (√v̂ + ε).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/error.h"
#include "common/hostdevice.h"
#include "numerics/storage_format.h"

namespace octet {

struct AdamWHyper {
    float lr, beta1, beta2, eps;
    float bias1, bias2; // 1 − β^t
    float decay;        // 1 − lr·wd, applied to tensors with weight decay
    double clip;        // gradient multiplier: max_norm / norm when clipping, else 1
    // C_t, the largest |m̂ / √v̂| any gradients give at this step (MOSS's weight-bound predictor:
    // recipe/moss_weight_scaling.h); +∞ where β1² ≥ β2.
    double max_update;
};

// A moment of the plain AdamW step (Ops::adamw_step), in the parameters' flat layout: FP32, or
// BF16 codes (DeepSeek-V3's moments: FP32's exponent range, so no scale), rounded to nearest-even
// when stored.
struct MomentStorage {
    StorageFormat format = StorageFormat::fp32;
    void* codes = nullptr;
};

OCTET_HD bool plain_moment_format(StorageFormat f) {
    return f == StorageFormat::fp32 || f == StorageFormat::bf16;
}

// What every backend's Ops::adamw_step checks first: scaled formats take adamw_step_scaled.
inline void require_plain_moments(MomentStorage m, MomentStorage v) {
    if (!plain_moment_format(m.format) || !plain_moment_format(v.format))
        throw Error("adamw_step: moments must be fp32 or bf16 (scaled formats take "
                    "adamw_step_scaled)");
}

// A parameter tensor in the flat buffer and whether AdamW decays it.
struct TensorSpan {
    int64_t offset, numel;
    bool decay;
};

// The gradient multiplier of global-norm clipping: max_norm / norm when max_norm > 0 and the norm
// exceeds it, else 1.
OCTET_HD double clip_factor(double norm, double max_norm) {
    return max_norm > 0 && norm > max_norm ? max_norm / norm : 1.0;
}

OCTET_HD void adamw_update(float& w, float g, float& m, float& v, const AdamWHyper& h, bool decay) {
    const float gi = float(double(g) * h.clip);
    m = h.beta1 * m + (1 - h.beta1) * gi;
    v = h.beta2 * v + (1 - h.beta2) * gi * gi;
    const float m_hat = m / h.bias1, v_hat = v / h.bias2;
    if (decay) w *= h.decay;
    w -= h.lr * m_hat / (sqrtf(v_hat) + h.eps);
}

} // namespace octet
