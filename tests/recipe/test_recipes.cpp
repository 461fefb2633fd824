// Every recipe, every role: scale layout, per-element error bound, and the edge cases the issue
// names (amax 0, NaN/Inf in the input, empty tensors, dimensions that are not multiples of the
// group). Recipe-specific rules (TE delayed history, MX, row-wise) get their own tests.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/error.h"
#include "numerics/scaling.h"
#include "recipe/recipe.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/recipe_specs.h"
#include "tests/harness/temp_dir.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::random_matrix;
using testing::seed_note;

const TensorRole all_roles[] = {TensorRole::activation, TensorRole::weight, TensorRole::gradient};

const auto& all_specs = testing::all_recipe_specs;

QuantizedTensor quantize(const std::string& spec, TensorRole role, MatrixView x) {
    return make_recipe(spec)->make_quantizer(role)->quantize(x);
}

// |x̂ − x| ≤ (half an ulp at x's binade, or half the smallest subnormal) · scale_inv, for every
// element inside the format's range; elements beyond it must be saturated to ±max · scale_inv.
void expect_within_rounding(const std::vector<float>& x, const QuantizedTensor& q,
                            const std::string& what) {
    const std::vector<float> xq = dequantize(q);
    const FormatSpec s = format_spec(q.format);
    const double max = format_max(q.format);
    const double min_subnormal = std::ldexp(1.0, 1 - s.exponent_bias - s.mantissa_bits);
    for (int64_t i = 0; i < q.numel(); ++i) {
        if (!std::isfinite(x[size_t(i)])) continue;
        const double scale_inv = q.scale_inv_at(i / q.cols, i % q.cols);
        const double v = x[size_t(i)] / scale_inv; // the value the cast saw, up to float rounding
        const double err = std::fabs(double(xq[size_t(i)]) - x[size_t(i)]) / scale_inv;
        if (std::fabs(v) > max * (1 + 1e-6)) {
            ASSERT_EQ(std::fabs(xq[size_t(i)]), float(max * scale_inv)) << what << " element " << i;
            continue;
        }
        const double half_ulp =
            std::max(std::ldexp(1.0, std::ilogb(std::max(std::fabs(v), min_subnormal)) -
                                         s.mantissa_bits - 1),
                     min_subnormal / 2);
        ASSERT_LE(err, half_ulp * (1 + 1e-5) + std::fabs(v) * 1e-6)
            << what << " element " << i << " x=" << x[size_t(i)] << " x̂=" << xq[size_t(i)];
    }
}

TEST(Recipes, EveryRecipeAndRoleStaysWithinRoundingOnAwkwardShapes) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const int64_t shapes[][2] = {{1, 1}, {1, 1296}, {217, 256}, {5, 160}, {129, 33}, {3, 4097}};
    for (auto [rows, cols] : shapes) {
        const std::vector<float> x = random_matrix(rng, rows, cols, 6.0);
        for (const char* spec : all_specs) {
            for (TensorRole role : all_roles) {
                const std::string what = std::string(spec) + " " + role_name(role) + " " +
                                         std::to_string(rows) + "x" + std::to_string(cols);
                auto quantizer = make_recipe(spec)->make_quantizer(role);
                quantizer->quantize({x.data(), rows, cols}); // te-delayed: fill the history
                const QuantizedTensor q = quantizer->quantize({x.data(), rows, cols});
                ASSERT_EQ(q.rows, rows);
                ASSERT_EQ(q.cols, cols);
                ASSERT_EQ(int64_t(q.codes.size()), rows * cols);
                for (const ScaleGrid& g : q.scales) {
                    ASSERT_EQ(g.grid_rows, (rows + g.block_rows - 1) / g.block_rows) << what;
                    ASSERT_EQ(g.grid_cols, (cols + g.block_cols - 1) / g.block_cols) << what;
                    for (float s : g.scale_inv) ASSERT_TRUE(std::isfinite(s) && s > 0) << what;
                    if (g.encoding == ScaleEncoding::e8m0) {
                        ASSERT_TRUE(g.all_powers_of_two());
                    }
                }
                expect_within_rounding(x, q, what);
            }
        }
    }
}

TEST(Recipes, ScaleLayoutsAreTheDocumentedOnes) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const std::vector<float> x = random_matrix(rng, 300, 520, 2.0);
    const MatrixView v{x.data(), 300, 520};
    struct Expected {
        const char* spec;
        TensorRole role;
        int64_t block_rows, block_cols;
        ScaleEncoding encoding;
        Format format;
    };
    const Expected cases[] = {
        {"te-current", TensorRole::activation, 300, 520, ScaleEncoding::fp32, Format::e4m3},
        {"te-current", TensorRole::gradient, 300, 520, ScaleEncoding::fp32, Format::e5m2},
        {"te-current:format=e4m3", TensorRole::gradient, 300, 520, ScaleEncoding::fp32,
         Format::e4m3},
        {"te-delayed", TensorRole::gradient, 300, 520, ScaleEncoding::fp32, Format::e5m2},
        {"rowwise", TensorRole::weight, 1, 520, ScaleEncoding::fp32, Format::e4m3},
        {"blockwise", TensorRole::activation, 1, 128, ScaleEncoding::fp32, Format::e4m3},
        {"blockwise", TensorRole::gradient, 1, 128, ScaleEncoding::fp32, Format::e4m3},
        {"blockwise", TensorRole::weight, 128, 128, ScaleEncoding::fp32, Format::e4m3},
        {"mxfp8", TensorRole::activation, 1, 32, ScaleEncoding::e8m0, Format::e4m3},
        {"mxfp8:format=e5m2", TensorRole::gradient, 1, 32, ScaleEncoding::e8m0, Format::e5m2},
        {"moss", TensorRole::weight, 300, 520, ScaleEncoding::fp32, Format::e4m3},
    };
    for (const Expected& e : cases) {
        const QuantizedTensor q = quantize(e.spec, e.role, v);
        SCOPED_TRACE(std::string(e.spec) + " " + role_name(e.role));
        ASSERT_EQ(q.scales.size(), 1u);
        EXPECT_EQ(q.scales[0].block_rows, e.block_rows);
        EXPECT_EQ(q.scales[0].block_cols, e.block_cols);
        EXPECT_EQ(q.scales[0].encoding, e.encoding);
        EXPECT_EQ(q.format, e.format);
    }
    const QuantizedTensor moss = quantize("moss", TensorRole::activation, v);
    ASSERT_EQ(moss.scales.size(), 2u);
    EXPECT_EQ(moss.scales[0].block_cols, 32);
    EXPECT_EQ(moss.scales[0].encoding, ScaleEncoding::e8m0);
    EXPECT_EQ(moss.scales[1].grid_rows * moss.scales[1].grid_cols, 1);
}

TEST(Recipes, APartialBlockTakesItsScaleFromTheElementsPresent) {
    // 1×130 under blockwise: the second group holds two elements, its scale comes from them.
    std::vector<float> x(130, 100.0f);
    x[128] = 3.0f;
    x[129] = -1.5f;
    const QuantizedTensor q = quantize("blockwise", TensorRole::activation, {x.data(), 1, 130});
    ASSERT_EQ(q.scales[0].scale_inv.size(), 2u);
    EXPECT_EQ(q.scales[0].scale_inv[0], 1.0f / (448.0f / 100.0f));
    EXPECT_EQ(q.scales[0].scale_inv[1], 1.0f / (448.0f / 3.0f));
}

TEST(Recipes, AllZeroTensorsGiveUnitScalesAndZeros) {
    const std::vector<float> zeros(64 * 96, 0.0f);
    for (const char* spec : all_specs) {
        for (TensorRole role : all_roles) {
            const QuantizedTensor q = quantize(spec, role, {zeros.data(), 64, 96});
            for (const ScaleGrid& g : q.scales)
                for (float s : g.scale_inv) EXPECT_EQ(s, 1.0f) << spec;
            for (float v : dequantize(q)) EXPECT_EQ(v, 0.0f) << spec;
        }
    }
}

TEST(Recipes, NanAndInfStayPutAndDoNotSpoilTheirBlock) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const int64_t rows = 130, cols = 257;
    std::vector<float> x = random_matrix(rng, rows, cols, 1.0);
    const float inf = std::numeric_limits<float>::infinity();
    x[5] = std::numeric_limits<float>::quiet_NaN();
    x[300] = inf;
    x[301] = -inf;
    for (const char* spec : all_specs) {
        for (TensorRole role : all_roles) {
            const QuantizedTensor q = quantize(spec, role, {x.data(), rows, cols});
            const std::vector<float> xq = dequantize(q);
            const std::string what = std::string(spec) + " " + role_name(role);
            EXPECT_TRUE(std::isnan(xq[5])) << what;
            if (q.format == Format::e5m2) {
                EXPECT_EQ(xq[300], inf) << what;
                EXPECT_EQ(xq[301], -inf) << what;
            } else {
                EXPECT_TRUE(std::isnan(xq[300]) && std::isnan(xq[301])) << what;
            }
            for (size_t i = 0; i < xq.size(); ++i) {
                if (i == 5 || i == 300 || i == 301) continue;
                ASSERT_TRUE(std::isfinite(xq[i])) << what;
            }
            // The blocks' scales ignored the non-finite values: the others keep full precision.
            expect_within_rounding(x, q, what);
        }
    }
}

TEST(Recipes, EmptyTensorsQuantizeToEmptyTensors) {
    for (const char* spec : all_specs) {
        for (TensorRole role : all_roles) {
            for (auto [rows, cols] : {std::pair<int64_t, int64_t>{0, 128}, {16, 0}, {0, 0}}) {
                const QuantizedTensor q = quantize(spec, role, {nullptr, rows, cols});
                EXPECT_EQ(q.numel(), 0) << spec;
                EXPECT_TRUE(q.codes.empty());
                EXPECT_TRUE(dequantize(q).empty());
            }
        }
    }
}

TEST(Recipes, DelayedScalingUsesTheHistoryBeforeThisStep) {
    auto quantizer =
        make_recipe("te-delayed:history=2,format=e4m3")->make_quantizer(TensorRole::activation);
    auto step = [&](float amax) {
        const std::vector<float> x = {amax, amax / 2};
        return quantizer->quantize({x.data(), 1, 2}).scales[0].scale_inv[0];
    };
    EXPECT_EQ(step(10.0f), 1.0f);                   // first step: nothing known, scale 1
    EXPECT_EQ(step(1.0f), 1.0f / (448.0f / 10.0f)); // from history {10}
    EXPECT_EQ(step(1.0f), 1.0f / (448.0f / 10.0f)); // from max{10, 1}
    EXPECT_EQ(step(0.0f), 1.0f / (448.0f / 1.0f));  // from max{1, 1}: the 10 left the window
    EXPECT_EQ(step(5.0f), 1.0f / (448.0f / 1.0f));  // from max{1, 0}
    EXPECT_EQ(step(5.0f), 1.0f / (448.0f / 5.0f));  // from max{0, 5}

    auto recent =
        make_recipe("te-delayed:algo=most_recent")->make_quantizer(TensorRole::activation);
    auto step_recent = [&](float amax) {
        const std::vector<float> x = {amax};
        return recent->quantize({x.data(), 1, 1}).scales[0].scale_inv[0];
    };
    step_recent(10.0f);
    step_recent(2.0f);
    EXPECT_EQ(step_recent(0.0f), 1.0f / (448.0f / 2.0f));
    EXPECT_EQ(step_recent(3.0f), 1.0f / (448.0f / 2.0f)); // amax 0 kept the previous scale
}

// The GPU path: the plan first, the amax later (Quantizer::amax_may_follow). The state must be
// what plan(amax) makes it, whether the pending amax is taken in by the next plan or by a state
// read, and each amax must be fetched exactly once.
TEST(Recipes, DelayedScalingTakesAnAmaxThatFollowsThePlan) {
    const auto recipe = make_recipe("te-delayed:history=3,format=e4m3");
    auto now = recipe->make_quantizer(TensorRole::activation),
         later = recipe->make_quantizer(TensorRole::activation);
    ASSERT_TRUE(later->amax_may_follow());
    int fetches = 0;
    for (float amax : {10.0f, 1.0f, 0.0f, 5.0f, 7.0f}) {
        const QuantizePlan expected = now->plan(amax);
        const QuantizePlan got = later->plan_before_amax([&fetches, amax] {
            ++fetches;
            return amax;
        });
        EXPECT_EQ(got.rule.fixed.scale, expected.rule.fixed.scale) << "amax " << amax;
        EXPECT_EQ(got.rule.fixed.scale_inv, expected.rule.fixed.scale_inv) << "amax " << amax;
    }
    EXPECT_EQ(fetches, 4); // the last amax is still pending
    EXPECT_EQ(later->state(), now->state());
    EXPECT_EQ(fetches, 5);
    EXPECT_EQ(later->state(), now->state());
    EXPECT_EQ(fetches, 5);

    // A recipe whose plan depends on the amax says so, and refuses to plan before it.
    auto current = make_recipe("te-current")->make_quantizer(TensorRole::activation);
    EXPECT_FALSE(current->amax_may_follow());
    EXPECT_THROW(current->plan_before_amax([] { return 1.0f; }), Error);
}

TEST(Recipes, DelayedScalingSaturatesWhenTheTensorOutgrowsItsHistory) {
    auto q = make_recipe("te-delayed:format=e4m3")->make_quantizer(TensorRole::activation);
    std::vector<float> x = {1.0f, 0.5f};
    q->quantize({x.data(), 1, 2});
    x = {100.0f, 0.5f}; // 100× the history's amax
    const std::vector<float> xq = dequantize(q->quantize({x.data(), 1, 2}));
    EXPECT_EQ(xq[0], 448.0f * (1.0f / 448.0f));
}

TEST(Recipes, RowwiseScalesArePowersOfTwoPerRow) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const std::vector<float> x = random_matrix(rng, 17, 300, 8.0);
    const QuantizedTensor q = quantize("rowwise", TensorRole::activation, {x.data(), 17, 300});
    ASSERT_EQ(q.scales[0].scale_inv.size(), 17u);
    EXPECT_TRUE(q.scales[0].all_powers_of_two());
}

TEST(Recipes, MxBlocksFollowTheOcpScaleAndSaturate) {
    std::vector<float> x(64);
    for (int i = 0; i < 64; ++i) x[size_t(i)] = float(i % 7) - 3.0f;
    x[3] = 500.0f;       // block 0: 2^(8 − 8) = 1; 500 saturates to 448
    x[40] = 1.0f / 1024; // block 1: amax 3
    const QuantizedTensor q = quantize("mxfp8", TensorRole::activation, {x.data(), 1, 64});
    EXPECT_EQ(q.scales[0].scale_inv[0], 1.0f);
    EXPECT_EQ(q.scales[0].scale_inv[1], std::ldexp(1.0f, 1 - 8));
    EXPECT_EQ(q.scales[0].e8m0_codes()[1], 127 - 7);
    EXPECT_EQ(dequantize(q)[3], 448.0f);
}

TEST(Recipes, QuantizationIsDeterministic) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const std::vector<float> x = random_matrix(rng, 40, 200, 3.0);
    for (const char* spec : all_specs) {
        const QuantizedTensor a = quantize(spec, TensorRole::activation, {x.data(), 40, 200});
        const QuantizedTensor b = quantize(spec, TensorRole::activation, {x.data(), 40, 200});
        EXPECT_EQ(a.codes, b.codes) << spec;
    }
}

TEST(Recipes, BadSpecsAreRejectedWithMessagesNamingTheProblem) {
    auto message = [](const std::string& spec) {
        return testing::error_message([&] { make_recipe(spec); });
    };
    EXPECT_NE(message("fp4").find("unknown recipe 'fp4'"), std::string::npos);
    EXPECT_NE(message("fp4").find("moss"), std::string::npos); // lists the known ones
    EXPECT_NE(message("moss:grup=32").find("grup"), std::string::npos);
    EXPECT_NE(message("moss:group=0").find("group=0"), std::string::npos);
    EXPECT_NE(message("blockwise:pow2=maybe").find("pow2=maybe"), std::string::npos);
    EXPECT_NE(message("te-delayed:algo=mean").find("max | most_recent"), std::string::npos);
    EXPECT_NE(message("te-current:margin").find("key=value"), std::string::npos);
    EXPECT_NE(message("rowwise:pow2=true,pow2=false").find("twice"), std::string::npos);
    EXPECT_THROW(parse_role("bias"), Error);
    for (const std::string& name : recipe_names()) EXPECT_NO_THROW(make_recipe(name));
}

} // namespace
} // namespace octet
