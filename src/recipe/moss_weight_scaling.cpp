// MOSS weight-scale prediction: C_t and the re-sync schedule; the bound and its proof are in the
// header and docs/moss-weight-scaling.md.
#include "recipe/moss_weight_scaling.h"

#include <cmath>
#include <string>

#include "common/error.h"

namespace octet {

double moment_roundoff(StorageFormat f) {
    if (f == StorageFormat::fp32) return 0.0;
    if (f == StorageFormat::bf16) return 0x1.0p-8;
    return HUGE_VAL;
}

// ρ of the header: how much the moments' roundings can widen γ.
static double rounding_growth(MomentRounding moments) {
    return (1.0 + moments.m) * (1.0 + moments.m) / (1.0 - moments.v);
}

bool adam_update_bounded(double beta1, double beta2, MomentRounding moments) {
    return beta1 >= 0.0 && beta1 < 1.0 && beta2 > 0.0 && beta2 < 1.0 && moments.m < 1.0 &&
           moments.v < 1.0 && beta1 * beta1 * rounding_growth(moments) < beta2;
}

double adam_update_bound(double beta1, double beta2, int64_t step, MomentRounding moments) {
    if (!adam_update_bounded(beta1, beta2, moments))
        throw Error("moss: the weight-scale bound needs 0 <= beta1 < 1, 0 < beta2 < 1, fp32 or "
                    "bf16 AdamW moments and beta1^2 * rho < beta2, rho = " +
                    std::to_string(rounding_growth(moments)) +
                    " for these moments (1 for fp32, 1.0118 for bf16); got beta1=" +
                    std::to_string(beta1) + ", beta2=" + std::to_string(beta2));
    if (step < 1) throw Error("moss: optimizer step index must start at 1");
    const double t = double(step);
    const double gamma = beta1 * beta1 / beta2 * rounding_growth(moments);
    const double bias1 = 1.0 - std::pow(beta1, t);
    const double bias2 = 1.0 - std::pow(beta2, t);
    const double geometric = (1.0 - std::pow(gamma, t)) / (1.0 - gamma);
    return (1.0 - beta1) / bias1 * std::sqrt(bias2 / (1.0 - beta2)) * std::sqrt(geometric);
}

WeightBoundSchedule::WeightBoundSchedule(int64_t resync_every) : resync_every_(resync_every) {
    if (resync_every < 1) throw Error("moss: resync interval must be at least 1 step");
}

void WeightBoundSchedule::step(const OptimizerStep& step) {
    adam_update_bound(step.beta1, step.beta2, step.step, step.moments); // throws where it fails
    const double decay = step.lr * step.weight_decay;
    if (!(step.lr >= 0.0) || !(decay >= 0.0 && decay <= 1.0))
        throw Error("moss: the weight-scale bound needs lr >= 0 and 0 <= lr*weight_decay <= 1");
    ++steps_since_sync_;
}

void WeightBoundSchedule::state(std::vector<double>& out) const {
    out.push_back(double(steps_since_sync_));
    out.push_back(synced_ ? 1.0 : 0.0);
}

void WeightBoundSchedule::set_state(double steps_since_sync, double synced) {
    steps_since_sync_ = int64_t(steps_since_sync);
    synced_ = synced != 0.0;
}

} // namespace octet
