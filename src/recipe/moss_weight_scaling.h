// MOSS automatic weight scaling: predict a bound on max|W_t| from the optimizer's learning rates
// instead of reducing the weight's amax every step; re-sync with the true amax every N steps.
//
// The bound (proved in docs/moss-weight-scaling.md). AdamW with decoupled weight decay does
//     W_t = d_t · W_{t−1} − lr_t · u_t,   d_t = 1 − lr_t·wd,   u_t = m̂_t / (√v̂_t + ε),
// and Cauchy–Schwarz on Adam's moment sums gives, for β1² < β2 and every element,
//     |u_t| ≤ C_t = (1−β1)/(1−β1^t) · √((1−β2^t)/(1−β2)) · √((1−γ^t)/(1−γ)),  γ = β1²/β2.
// (C_1 = 1; C_∞ = 1.165 for β = (0.9, 0.95); the paper's "|u| ≤ 1" is not a bound in general.)
// Moments stored in BF16 (each rounded by at most u = 2^-8 before the next step reads it) weight
// the gradient k steps back by at most (1 + u)^k in m and at least (1 − u)^k in v, which the same
// argument carries as γ·ρ in place of γ, ρ = (1 + u_m)² / (1 − u_v) (MomentRounding), and needs
// γ·ρ < 1. BF16 keeps FP32's exponent range, so its roundings are relative wherever FP32's are.
// Hence max|W_t| ≤ B_t with
//     B_t = (d_t · B_{t−1} + lr_t · C_t · (1 + 2^-16)) · (1 + 2^-22),   B_0 = the true amax at
//     sync,
// with d_t and lr_t the FP32 values the update multiplies by (AdamWHyper's decay and lr). The
// factors cover FP32 arithmetic: u_t computed from FP32 moments, and the three roundings of the
// master update. Without weight decay and with C_t = 1 this is the paper's max|W_0| + Σ lr.
//
// The bound lives in the memory of the backend that trains (the GPU's, where the step is a
// recorded graph): Ops::advance_weight_bounds moves it after each AdamW step, the weight's quantize
// plan reads it (ScaleRule::Kind::bound) and, on the steps the schedule below names, sets it to
// the weight's true amax first (QuantizePlan::sync_bound). No amax reduction and no host round
// trip between re-syncs.
#pragma once

#include <cstdint>

#include "common/hostdevice.h"
#include "numerics/storage_format.h"
#include "recipe/recipe.h"

namespace octet {

// The unit roundoff of a moment's storage (MomentRounding, recipe.h).
double moment_roundoff(StorageFormat f);

// Whether C_t below exists: 0 ≤ β1 < 1, 0 < β2 < 1, finite roundoffs and β1²·ρ < β2.
bool adam_update_bounded(double beta1, double beta2, MomentRounding moments);

// C_t above: the largest |m̂_t / √v̂_t| any gradient sequence can produce at AdamW step t (1-based)
// with moments stored as `moments` says. Throws Error unless adam_update_bounded().
double adam_update_bound(double beta1, double beta2, int64_t step, MomentRounding moments = {});

// B_t from B_{t−1} (above), given d_t, lr_t and C_t.
OCTET_HD double advance_weight_bound(double bound, double decay, double lr, double max_update) {
    constexpr double fp32_update = 1.0 + 0x1.0p-16, fp32_master = 1.0 + 0x1.0p-22;
    return (decay * bound + lr * (max_update * fp32_update)) * fp32_master;
}

// When the bound is re-synced with the true amax: at the first quantization, then at the first
// one after every `resync_every` optimizer steps.
class WeightBoundSchedule {
  public:
    explicit WeightBoundSchedule(int64_t resync_every = 500);
    bool sync_due() const { return !synced_ || resync_due(); }
    // A sync is due after an earlier one (the first comes with the first quantization, which an
    // eager step makes before any is recorded).
    bool resync_due() const { return synced_ && steps_since_sync_ >= resync_every_; }
    void synced() {
        steps_since_sync_ = 0;
        synced_ = true;
    }
    // Counts an optimizer step, checking that the bound holds for it: throws Error unless
    // β1²·ρ < β2 (adam_update_bound), lr ≥ 0 and 0 ≤ lr·wd ≤ 1.
    void step(const OptimizerStep& step);
    int64_t steps_since_sync() const { return steps_since_sync_; }
    // [steps since sync, synced] for checkpoints; set_state() takes them back.
    void state(std::vector<double>& out) const;
    void set_state(double steps_since_sync, double synced);

  private:
    int64_t resync_every_;
    int64_t steps_since_sync_ = 0;
    bool synced_ = false;
};

} // namespace octet
