// MOSS automatic weight scaling (recipe/moss_weight_scaling.h): the per-step Adam bound C_t is
// right and tight, and over thousands of the optimizer's own AdamW steps with a changing learning
// rate the predicted bound never falls below the true amax (no overflow). Reports the range it
// wastes. The quantizer's plans read the bound from its slot and re-sync it on schedule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "cpu/cpu_ops.h"
#include "numerics/fidelity.h"
#include "optim/adamw.h"
#include "recipe/block_quantize.h"
#include "recipe/moss_weight_scaling.h"
#include "tests/harness/fresh_seed.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::seed_note;

TEST(MossWeightScaling, AdamUpdateBoundClosedForms) {
    EXPECT_DOUBLE_EQ(adam_update_bound(0.9, 0.95, 1), 1.0);
    // t → ∞: (1 − β1)/√(1 − β2) · 1/√(1 − β1²/β2).
    const double limit = 0.1 / std::sqrt(0.05) / std::sqrt(1 - 0.81 / 0.95);
    EXPECT_NEAR(adam_update_bound(0.9, 0.95, 100000), limit, 1e-9);
    EXPECT_NEAR(limit, 1.1650, 1e-3);
    EXPECT_THROW(adam_update_bound(0.9, 0.8, 3), Error); // β1² ≥ β2
    EXPECT_THROW(adam_update_bound(0.9, 0.95, 0), Error);
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
    EXPECT_NEAR(u, adam_update_bound(b1, b2, t), 1e-9);
    EXPECT_GT(u, 1.1);
}

// BF16 moments: the bound with γ·ρ in place of γ is attained where every stored moment rounds the
// worst way (m up by 1 + 2^-8, v down by 1 − 2^-8) and g_i ∝ (β1 (1 + u) / (β2 (1 − u)))^(t−i),
// and it exceeds the FP32 bound there, so the widening is needed. Scaled (FP16, FP8) moments
// and β1²·ρ ≥ β2 have no bound.
TEST(MossWeightScaling, Bf16MomentsWidenTheBoundByTheirRounding) {
    const double b1 = 0.9, b2 = 0.95, u = 0x1.0p-8;
    const MomentRounding bf16{moment_roundoff(StorageFormat::bf16),
                              moment_roundoff(StorageFormat::bf16)};
    EXPECT_EQ(bf16.m, u);
    EXPECT_EQ(moment_roundoff(StorageFormat::fp32), 0.0);
    const int t = 60;
    double m = 0, v = 0, m_used = 0, v_used = 0;
    for (int i = 1; i <= t; ++i) {
        const double g = std::pow(b1 * (1 + u) / (b2 * (1 - u)), t - i);
        m_used = b1 * m + (1 - b1) * g;
        v_used = b2 * v + (1 - b2) * g * g;
        m = m_used * (1 + u);
        v = v_used * (1 - u);
    }
    const double ratio =
        (m_used / (1 - std::pow(b1, t))) / std::sqrt(v_used / (1 - std::pow(b2, t)));
    EXPECT_NEAR(ratio, adam_update_bound(b1, b2, t, bf16), 1e-9);
    EXPECT_GT(ratio, adam_update_bound(b1, b2, t) * 1.01);
    // t → ∞ with β = (0.9, 0.95): 1.165 in FP32, 1.207 with BF16 moments.
    EXPECT_NEAR(adam_update_bound(b1, b2, 100000, bf16), 1.207, 1e-3);
    for (StorageFormat scaled : {StorageFormat::fp16, StorageFormat::e4m3}) {
        const MomentRounding r{moment_roundoff(scaled), 0.0};
        EXPECT_FALSE(adam_update_bounded(b1, b2, r));
        EXPECT_THROW(adam_update_bound(b1, b2, 3, r), Error);
    }
    // β1² < β2 but β1²·ρ ≥ β2: FP32 moments have a bound, BF16 ones none.
    const double b2_tight = 0.81 * 1.005;
    EXPECT_TRUE(adam_update_bounded(b1, b2_tight, {}));
    EXPECT_FALSE(adam_update_bounded(b1, b2_tight, bf16));
    WeightBoundSchedule schedule;
    EXPECT_THROW(schedule.step({1e-3, 0.0, b1, b2_tight, 1, bf16}), Error);
}

struct AdamwRun {
    double beta1, beta2, weight_decay, peak_lr;
    const char* gradients; // "noise", "drift", "adversarial"
    const char* policy;    // moss's default (BF16 moments), or with FP32 ones
};

// The optimizer's own FP32 AdamW (CPU backend), warm-up + cosine LR, on a random tensor; the bound
// advances as training advances it (Ops::advance_weight_bounds after each update, from the
// step's hyperparameters) and re-syncs every 500 steps.
void run_adamw(const AdamwRun& run, uint64_t seed) {
    const int64_t n = 4096, steps = 3000, warmup = 200;
    Rng rng(seed);
    std::vector<float> w(n), g(n);
    for (float& x : w) x = float(0.02 * rng.normal());
    std::vector<float> bias(n);
    for (float& b : bias) b = float(rng.normal());
    CpuOps<float> ops;
    AdamWConfig config;
    config.beta1 = run.beta1;
    config.beta2 = run.beta2;
    config.weight_decay = run.weight_decay;
    config.grad_clip = 0.0;
    AdamW opt(ops, {{"w", {n}, 0, n, true}}, w.data(), make_policy(run.policy), config);

    WeightBoundSchedule schedule(500);
    double bound = 0;
    double worst_waste = 0, waste_sum = 0;
    int64_t saturated_steps = 0;
    for (int64_t t = 1; t <= steps; ++t) {
        if (schedule.sync_due()) {
            bound = tensor_amax({w.data(), 1, n});
            schedule.synced();
        }
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
        opt.step(w.data(), g.data(), lr);
        ops.advance_weight_bounds(&bound, 1, opt.hyper());
        schedule.step(opt.last_step());

        const double amax = tensor_amax({w.data(), 1, n});
        ASSERT_GE(bound, amax) << run.gradients << " step " << t;
        const double waste = std::log2(bound / amax);
        worst_waste = std::max(worst_waste, waste);
        waste_sum += waste;
        // The FP8 weight cast with this bound never saturates.
        const QuantizedTensor q =
            quantize_per_tensor({w.data(), 1, n}, Format::e4m3, scale_from_bound(bound, 448.0f));
        if (measure_fidelity({w.data(), 1, n}, q).saturated_fraction > 0) ++saturated_steps;
    }
    EXPECT_EQ(saturated_steps, 0);
    std::printf("%-11s %-30s beta=(%.2f, %.3f) wd=%.2f lr=%.0e: range wasted mean %.3f bits, "
                "worst %.3f bits\n",
                run.gradients, run.policy, run.beta1, run.beta2, run.weight_decay, run.peak_lr,
                waste_sum / double(steps), worst_waste);
}

TEST(MossWeightScaling, PredictedBoundNeverFallsBelowTheTrueAmax) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    for (const char* policy : {"moss", "moss:moment1=fp32,moment2=fp32"}) {
        const AdamwRun runs[] = {
            {0.9, 0.95, 0.1, 1e-3, "noise", policy},
            {0.9, 0.95, 0.1, 1e-3, "drift", policy},
            {0.9, 0.95, 0.1, 1e-3, "adversarial", policy},
            {0.9, 0.999, 0.0, 6e-4, "noise", policy},
            {0.9, 0.999, 0.0, 6e-4, "adversarial", policy},
        };
        for (const AdamwRun& run : runs) run_adamw(run, seed);
    }
}

// One step of the bound, against its formula in float64 terms, and the scale that covers it.
TEST(MossWeightScaling, AdvanceAddsTheLargestUpdateAndRoundsTheScaleUp) {
    const double decay = double(float(1 - 1e-3 * 0.1)), lr = double(float(1e-3));
    const double b = advance_weight_bound(0.5, decay, lr, 1.0);
    EXPECT_GT(b, decay * 0.5 + lr);
    EXPECT_LT(b, (decay * 0.5 + lr) * (1 + 1e-5));
    EXPECT_EQ(advance_weight_bound(0.0, 1.0, 0.0, 1.0), 0.0); // lr 0: nothing moves
    // 1 + 2^-40 is no float: the bound rounds up to the next float above 1.
    const BlockScale s = scale_from_bound(1.0 + 0x1.0p-40, 448.0f);
    EXPECT_EQ(s.scale, 448.0f / std::nextafter(1.0f, 2.0f));
    EXPECT_EQ(scale_from_bound(1.0, 448.0f).scale, 448.0f);
    EXPECT_EQ(scale_from_bound(0.0, 448.0f).scale, 1.0f); // an all-zero weight: unit scale
}

TEST(MossWeightScaling, ResyncsOnSchedule) {
    WeightBoundSchedule p(3);
    EXPECT_TRUE(p.sync_due());
    EXPECT_FALSE(p.resync_due()); // the first sync comes with the first quantization
    p.synced();
    EXPECT_FALSE(p.sync_due());
    for (int t = 1; t <= 3; ++t) p.step({1e-3, 0.0, 0.9, 0.95, t, {}});
    EXPECT_TRUE(p.sync_due());
    EXPECT_TRUE(p.resync_due());
    p.synced();
    EXPECT_EQ(p.steps_since_sync(), 0);
    EXPECT_THROW(p.step({2.0, 1.0, 0.9, 0.95, 1, {}}), Error);   // lr·wd > 1
    EXPECT_THROW(p.step({1e-3, 0.0, 0.9, 0.8, 1, {}}), Error);   // β1² ≥ β2: no bound
    EXPECT_THROW(p.step({-1e-3, 0.0, 0.9, 0.95, 1, {}}), Error); // lr < 0
    EXPECT_THROW(WeightBoundSchedule(0), Error);
}

// The moss weight quantizer's plans: the first and every resync-th one set the bound to the
// weight's amax, the others read the bound where it lives, as advanced since.
TEST(MossWeightScaling, TheMossWeightQuantizerReadsItsBoundWhereItLives) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    std::vector<float> w(256);
    for (float& x : w) x = float(rng.normal());
    auto q = make_recipe("moss:resync=2")->make_quantizer(TensorRole::weight);
    ASSERT_TRUE(q->predicts_bound());
    EXPECT_THROW(q->on_optimizer_step({0.01, 0.0, 0.9, 0.95, 1, {}}), Error); // nothing advances it
    double slot = -1.0;
    q->bind_bound(&slot, host_memory());
    const float amax0 = tensor_amax({w.data(), 1, 256});
    EXPECT_TRUE(q->plan_is_steady()); // the first plan syncs, but no recorded plan precedes it
    const QuantizedTensor first = q->quantize({w.data(), 1, 256});
    EXPECT_EQ(first.scales[0].scale_inv[0], 1.0f / (448.0f / amax0));
    EXPECT_EQ(slot, double(amax0));
    // Unbound, a quantizer keeps the bound itself and its plan carries the scale: the same codes.
    auto unbound = make_recipe("moss")->make_quantizer(TensorRole::weight);
    const QuantizedTensor same = unbound->quantize({w.data(), 1, 256});
    EXPECT_EQ(same.codes, first.codes);
    EXPECT_EQ(same.scales[0].scale_inv, first.scales[0].scale_inv);
    EXPECT_EQ(unbound->state(), (std::vector<double>{double(amax0), 0.0, 1.0}));

    // One step of lr 0.01: the weights stay, the scale covers amax0 + lr · C_1.
    slot = advance_weight_bound(slot, 1.0, double(0.01f), 1.0);
    q->on_optimizer_step({0.01, 0.0, 0.9, 0.95, 1, {}});
    const float scale_inv = q->quantize({w.data(), 1, 256}).scales[0].scale_inv[0];
    EXPECT_GT(scale_inv * 448.0f, amax0 + 0.01f * 0.999f);
    EXPECT_LT(scale_inv * 448.0f, amax0 + 0.01f * 1.001f);
    EXPECT_EQ(q->state(), (std::vector<double>{slot, 1.0, 1.0}));

    q->on_optimizer_step({0.01, 0.0, 0.9, 0.95, 2, {}});
    EXPECT_FALSE(q->plan_is_steady()); // two steps since the sync: this plan re-syncs
    const QuantizePlan resync = q->plan(0.0f);
    EXPECT_EQ(resync.sync_bound, &slot);
    EXPECT_TRUE(q->plan_is_steady());
    EXPECT_EQ(q->plan(0.0f).sync_bound, nullptr);

    q->set_state({0.75, 1.0, 1.0}); // a checkpoint's state lands in the slot
    EXPECT_EQ(slot, 0.75);
    EXPECT_THROW(q->set_state({0.75}), Error);
}

} // namespace
} // namespace octet
