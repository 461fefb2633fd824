// MOSS weight-scale predictor; the bound and its proof are in the header and
// docs/moss-weight-scaling.md.
#include "recipe/moss_weight_scaling.h"

#include <cmath>
#include <string>

#include "common/error.h"

namespace octet {

MossWeightScalePredictor::MossWeightScalePredictor(int64_t resync_every)
    : resync_every_(resync_every) {
    if (resync_every < 1) throw Error("moss: resync interval must be at least 1 step");
}

void MossWeightScalePredictor::set_state(const std::vector<double>& s) {
    if (s.size() != 3) throw Error("checkpoint: moss weight-scale state must hold 3 values");
    bound_ = s[0];
    steps_since_sync_ = int64_t(s[1]);
    synced_ = s[2] != 0.0;
}

bool MossWeightScalePredictor::needs_sync() const {
    return !synced_ || steps_since_sync_ >= resync_every_;
}

void MossWeightScalePredictor::sync(float true_amax) {
    bound_ = std::isfinite(true_amax) ? double(true_amax) : 0.0;
    steps_since_sync_ = 0;
    synced_ = true;
}

double MossWeightScalePredictor::adam_update_bound(double beta1, double beta2, int64_t step) {
    if (!(beta1 >= 0.0 && beta1 < 1.0 && beta2 > 0.0 && beta2 < 1.0 && beta1 * beta1 < beta2))
        throw Error("moss: the weight-scale bound needs 0 <= beta1 < 1, 0 < beta2 < 1 and "
                    "beta1^2 < beta2 (got beta1=" +
                    std::to_string(beta1) + ", beta2=" + std::to_string(beta2) + ")");
    if (step < 1) throw Error("moss: optimizer step index must start at 1");
    const double t = double(step);
    const double gamma = beta1 * beta1 / beta2;
    const double bias1 = 1.0 - std::pow(beta1, t);
    const double bias2 = 1.0 - std::pow(beta2, t);
    const double geometric = (1.0 - std::pow(gamma, t)) / (1.0 - gamma);
    return (1.0 - beta1) / bias1 * std::sqrt(bias2 / (1.0 - beta2)) * std::sqrt(geometric);
}

void MossWeightScalePredictor::advance(const OptimizerStep& step) {
    const double decay = step.lr * step.weight_decay;
    if (!(step.lr >= 0.0) || !(decay >= 0.0 && decay <= 1.0))
        throw Error("moss: the weight-scale bound needs lr >= 0 and 0 <= lr*weight_decay <= 1");
    const double c = adam_update_bound(step.beta1, step.beta2, step.step);
    constexpr double fp32_update_rounding = 1.0 + 0x1.0p-22;
    bound_ = ((1.0 - decay) * bound_ + step.lr * c) * fp32_update_rounding;
    ++steps_since_sync_;
}

} // namespace octet
