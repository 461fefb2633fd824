// MOSS automatic weight scaling: predict a bound on max|W_t| from the optimizer's learning rates
// instead of reducing the weight's amax every step; re-sync with the true amax every N steps.
//
// The bound (proved in docs/moss-weight-scaling.md). AdamW with decoupled weight decay does
//     W_t = (1 − lr_t·wd) · W_{t−1} − lr_t · u_t,   u_t = m̂_t / (√v̂_t + ε),
// and Cauchy–Schwarz on Adam's moment sums gives, for β1² < β2 and every element,
//     |u_t| ≤ C_t = (1−β1)/(1−β1^t) · √((1−β2^t)/(1−β2)) · √((1−γ^t)/(1−γ)),  γ = β1²/β2.
// (C_1 = 1; C_∞ = 1.165 for β = (0.9, 0.95); the paper's "|u| ≤ 1" is not a bound in general.)
// Hence max|W_t| ≤ B_t with B_t = ((1 − lr_t·wd) · B_{t−1} + lr_t · C_t) · (1 + 2^-22), B_0 = the
// true amax at the last sync; the last factor covers the FP32 rounding of the master update.
// Without weight decay and with C_t = 1 this is the paper's max|W_0| + Σ lr.
#pragma once

#include <cstdint>
#include <vector>

#include "recipe/recipe.h"

namespace octet {

class MossWeightScalePredictor {
  public:
    explicit MossWeightScalePredictor(int64_t resync_every = 500);

    // True before the first sync and once resync_every steps have passed since the last one.
    bool needs_sync() const;
    // Set the bound to the weight's true amax (finite elements).
    void sync(float true_amax);
    // Advance the bound by one AdamW step. Throws Error unless β1² < β2 and 0 ≤ lr·wd ≤ 1.
    void advance(const OptimizerStep& step);

    double bound() const { return bound_; }
    // [bound, steps since sync, synced] for checkpoints.
    std::vector<double> state() const {
        return {bound_, double(steps_since_sync_), synced_ ? 1.0 : 0.0};
    }
    void set_state(const std::vector<double>& s);
    int64_t steps_since_sync() const { return steps_since_sync_; }

    // C_t above: the largest |m̂_t / √v̂_t| any gradient sequence can produce at step t.
    static double adam_update_bound(double beta1, double beta2, int64_t step);

  private:
    int64_t resync_every_;
    int64_t steps_since_sync_ = 0;
    bool synced_ = false;
    double bound_ = 0.0;
};

} // namespace octet
