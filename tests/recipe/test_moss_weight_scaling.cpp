// MOSS automatic weight scaling (recipe/moss_weight_scaling.h): the per-step Adam bound C_t is
// right and tight, and over thousands of real AdamW steps with a changing learning rate the
// predicted bound never falls below the true amax (no overflow). Reports the range it wastes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "numerics/fidelity.h"
#include "recipe/block_quantize.h"
#include "recipe/moss_weight_scaling.h"
#include "tests/harness/fresh_seed.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::seed_note;

TEST(MossWeightScaling, AdamUpdateBoundClosedForms) {
    EXPECT_DOUBLE_EQ(MossWeightScalePredictor::adam_update_bound(0.9, 0.95, 1), 1.0);
    // t → ∞: (1 − β1)/√(1 − β2) · 1/√(1 − β1²/β2).
    const double limit = 0.1 / std::sqrt(0.05) / std::sqrt(1 - 0.81 / 0.95);
    EXPECT_NEAR(MossWeightScalePredictor::adam_update_bound(0.9, 0.95, 100000), limit, 1e-9);
    EXPECT_NEAR(limit, 1.1650, 1e-3);
    EXPECT_THROW(MossWeightScalePredictor::adam_update_bound(0.9, 0.8, 3), Error); // β1² ≥ β2
    EXPECT_THROW(MossWeightScalePredictor::adam_update_bound(0.9, 0.95, 0), Error);
}

// The Cauchy–Schwarz bound is attained: gradients g_i ∝ (β1/β2)^(t−i) make |m̂/√v̂| = C_t,
// which exceeds 1, so the paper's "|u| ≤ 1" does not hold in general.
TEST(MossWeightScaling, TheBoundIsAttainedAndExceedsOne) {
    const double b1 = 0.9, b2 = 0.95;
    const int t = 60;
    double m = 0, v = 0;
    for (int i = 1; i <= t; ++i) {
        const double g = std::pow(b1 / b2, t - i);
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
    }
    const double u = (m / (1 - std::pow(b1, t))) / std::sqrt(v / (1 - std::pow(b2, t)));
    EXPECT_NEAR(u, MossWeightScalePredictor::adam_update_bound(b1, b2, t), 1e-9);
    EXPECT_GT(u, 1.1);
}

struct AdamwRun {
    double beta1, beta2, weight_decay, peak_lr;
    const char* gradients; // "noise", "drift", "adversarial"
};

// Real AdamW in FP32 (PyTorch's update order), warm-up + cosine LR, on a random tensor; the
// predictor follows through the moss weight Quantizer and re-syncs every 500 steps.
void run_adamw(const AdamwRun& run, uint64_t seed) {
    const int64_t n = 4096, steps = 3000, warmup = 200;
    Rng rng(seed);
    std::vector<float> w(n), m(n, 0.0f), v(n, 0.0f), g(n);
    for (float& x : w) x = float(0.02 * rng.normal());
    std::vector<float> bias(n);
    for (float& b : bias) b = float(rng.normal());

    MossWeightScalePredictor predictor(500);
    double worst_waste = 0, waste_sum = 0;
    int64_t saturated_steps = 0;
    for (int64_t t = 1; t <= steps; ++t) {
        if (predictor.needs_sync()) predictor.sync(tensor_amax({w.data(), 1, n}));
        const double progress = double(t - warmup) / double(steps - warmup);
        const double lr = t <= warmup
                              ? run.peak_lr * double(t) / warmup
                              : run.peak_lr * (0.1 + 0.45 * (1 + std::cos(M_PI * progress)));
        for (int64_t i = 0; i < n; ++i) {
            const std::string_view kind = run.gradients;
            if (kind == "noise")
                g[i] = float(rng.normal() * 1e-2);
            else if (kind == "drift")
                g[i] = float((bias[i] + 0.3 * rng.normal()) * 1e-3);
            // Adversarial: the sign that pushes |w| outward, with magnitudes shaped like the
            // sequence that attains C_t in TheBoundIsAttainedAndExceedsOne.
            else
                g[i] = float((w[i] >= 0 ? -1.0 : 1.0) *
                             std::pow(run.beta2 / run.beta1, double(t % 40)));
        }
        const float b1 = float(run.beta1), b2 = float(run.beta2);
        const float bc1 = 1.0f - std::pow(b1, float(t)), bc2 = 1.0f - std::pow(b2, float(t));
        for (int64_t i = 0; i < n; ++i) {
            w[i] *= 1.0f - float(lr * run.weight_decay);
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            w[i] -= float(lr) * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + 1e-8f);
        }
        predictor.advance({lr, run.weight_decay, run.beta1, run.beta2, t});

        const double amax = tensor_amax({w.data(), 1, n});
        ASSERT_GE(predictor.bound(), amax) << run.gradients << " step " << t;
        const double waste = std::log2(predictor.bound() / amax);
        worst_waste = std::max(worst_waste, waste);
        waste_sum += waste;
        // The FP8 weight cast with this bound never saturates.
        const BlockScale s =
            scale_from_amax(float(predictor.bound()) * (1 + 1e-7f), 448.0f, 0, false);
        const QuantizedTensor q = quantize_per_tensor({w.data(), 1, n}, Format::e4m3, s);
        if (measure_fidelity({w.data(), 1, n}, q).saturated_fraction > 0) ++saturated_steps;
    }
    EXPECT_EQ(saturated_steps, 0);
    std::printf(
        "%-11s beta=(%.2f, %.3f) wd=%.2f lr=%.0e: range wasted mean %.3f bits, worst %.3f bits\n",
        run.gradients, run.beta1, run.beta2, run.weight_decay, run.peak_lr,
        waste_sum / double(steps), worst_waste);
}

TEST(MossWeightScaling, PredictedBoundNeverFallsBelowTheTrueAmax) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    const AdamwRun runs[] = {
        {0.9, 0.95, 0.1, 1e-3, "noise"},        {0.9, 0.95, 0.1, 1e-3, "drift"},
        {0.9, 0.95, 0.1, 1e-3, "adversarial"},  {0.9, 0.999, 0.0, 6e-4, "noise"},
        {0.9, 0.999, 0.0, 6e-4, "adversarial"},
    };
    for (const AdamwRun& run : runs) run_adamw(run, seed);
}

TEST(MossWeightScaling, ResyncsOnSchedule) {
    MossWeightScalePredictor p(3);
    EXPECT_TRUE(p.needs_sync());
    p.sync(0.5f);
    EXPECT_FALSE(p.needs_sync());
    for (int t = 1; t <= 3; ++t) p.advance({1e-3, 0.0, 0.9, 0.95, t});
    EXPECT_TRUE(p.needs_sync());
    EXPECT_GT(p.bound(), 0.5 + 1e-3); // three steps of at least lr · C_1 = lr
    p.sync(0.25f);
    EXPECT_EQ(p.bound(), 0.25);
    EXPECT_EQ(p.steps_since_sync(), 0);
    EXPECT_THROW(p.advance({2.0, 1.0, 0.9, 0.95, 1}), Error); // lr·wd > 1
    EXPECT_THROW(MossWeightScalePredictor(0), Error);
}

TEST(MossWeightScaling, TheMossRecipeFeedsTheQuantizerFromOptimizerSteps) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    std::vector<float> w(256);
    for (float& x : w) x = float(rng.normal());
    auto q = make_recipe("moss:resync=100")->make_quantizer(TensorRole::weight);
    const float amax0 = tensor_amax({w.data(), 1, 256});
    EXPECT_EQ(q->quantize({w.data(), 1, 256}).scales[0].scale_inv[0], 1.0f / (448.0f / amax0));
    q->on_optimizer_step({0.01, 0.0, 0.9, 0.95, 1});
    // Weights unchanged, but the scale now covers amax0 + lr · C_1 (and a hair of rounding).
    const float scale_inv = q->quantize({w.data(), 1, 256}).scales[0].scale_inv[0];
    EXPECT_GT(scale_inv * 448.0f, amax0 + 0.01f * 0.999f);
    EXPECT_LT(scale_inv * 448.0f, amax0 + 0.01f * 1.001f);
}

} // namespace
} // namespace octet
