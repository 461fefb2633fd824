// moss: MOSS (arXiv 2511.05811). GEMM inputs (activations, gradients) take two-level
// microscaling (see moss.h); weights take one per-tensor FP32 scale from the automatic
// weight-scale predictor (moss_weight_scaling.h): scale = fmt_max / B_t, re-synced with the true
// amax every `resync` steps. E4M3 everywhere (the record does not say otherwise for gradients:
// see docs/recipes.md).
// Options: group (32; the paper's k2), global_rows (0 = per tensor), resync (500).
#include "recipe/moss.h"

#include "numerics/scaling.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "recipe/moss_weight_scaling.h"
#include "recipe/recipes.h"

namespace octet {

QuantizedTensor quantize_two_level(MatrixView x, const TwoLevelOptions& o) {
    const float fmt_max = format_max(o.format);
    const BlockShape group{1, o.group};
    const int64_t coarse_rows = o.global_rows > 0 ? o.global_rows : std::max<int64_t>(x.rows, 1);
    std::vector<float> group_s = block_amax(x, group);
    for (float& s : group_s) s /= fmt_max;

    QuantizedTensor q;
    q.format = o.format;
    q.rows = x.rows;
    q.cols = x.cols;
    q.codes.resize(size_t(x.rows * x.cols));
    ScaleGrid local = make_scale_grid(x.rows, x.cols, 1, o.group, ScaleEncoding::e8m0);
    ScaleGrid global = make_scale_grid(x.rows, x.cols, coarse_rows, std::max<int64_t>(x.cols, 1),
                                       ScaleEncoding::fp32);
    const int64_t groups_per_row = local.grid_cols;
    if (x.rows == 0 || x.cols == 0) global.scale_inv.clear(); // no elements, no scales

    for (int64_t cb = 0; cb < int64_t(global.scale_inv.size()); ++cb) {
        const int64_t r0 = cb * coarse_rows, r1 = std::min(x.rows, r0 + coarse_rows);
        float s = 0.0f;
        for (int64_t i = r0 * groups_per_row; i < r1 * groups_per_row; ++i)
            s = std::max(s, group_s[size_t(i)]);
        s = moss_global_scale(s);
        global.scale_inv[size_t(cb)] = s;
        for (int64_t r = r0; r < r1; ++r) {
            for (int64_t g = 0; g < groups_per_row; ++g) {
                const TwoLevelScale ts =
                    moss_group_scale(group_s[size_t(r * groups_per_row + g)], s);
                local.scale_inv[size_t(r * groups_per_row + g)] = ts.local_scale_inv;
                const int64_t c1 = std::min(x.cols, (g + 1) * o.group);
                for (int64_t c = g * o.group; c < c1; ++c)
                    q.codes[size_t(r * x.cols + c)] = cast_scaled(x.at(r, c), ts.scale, o.format);
            }
        }
    }
    q.scales.push_back(std::move(local));
    q.scales.push_back(std::move(global));
    return q;
}

namespace {

struct MossOptions {
    int64_t group;
    int64_t global_rows;
    int64_t resync;
};

class MossWeightQuantizer final : public Quantizer {
  public:
    explicit MossWeightQuantizer(int64_t resync) : predictor_(resync) {}

    bool needs_tensor_amax() const override { return predictor_.needs_sync(); }
    QuantizePlan plan(float tensor_amax) override {
        if (predictor_.needs_sync()) predictor_.sync(tensor_amax);
        const float bound = float(predictor_.bound());
        // Rounding the double bound to float may lower it by half an ulp; step it back up.
        const float safe_bound =
            double(bound) < predictor_.bound() ? std::nextafter(bound, 3.4028235e38f) : bound;
        return QuantizePlan::per_tensor(
            Format::e4m3, scale_from_amax(safe_bound, format_max(Format::e4m3), 0, false));
    }
    void on_optimizer_step(const OptimizerStep& step) override { predictor_.advance(step); }
    std::vector<double> state() const override { return predictor_.state(); }
    void set_state(const std::vector<double>& s) override { predictor_.set_state(s); }

  private:
    MossWeightScalePredictor predictor_;
};

} // namespace

std::unique_ptr<Recipe> make_moss(RecipeOptions& options) {
    MossOptions o;
    o.group = options.get_int("group", 32, 1, 1 << 20);
    o.global_rows = options.get_int("global_rows", 0, 0, int64_t(1) << 40);
    o.resync = options.get_int("resync", 500, 1, int64_t(1) << 40);
    return make_fixed_recipe(
        "moss",
        "moss: two-level microscaling G=" + std::to_string(o.group) +
            " (E8M0 local x FP32 global " +
            (o.global_rows ? "per " + std::to_string(o.global_rows) + " rows" : "per tensor") +
            "), predicted weight scales re-synced every " + std::to_string(o.resync) +
            " steps, E4M3",
        [=](TensorRole role) -> std::unique_ptr<Quantizer> {
            if (role == TensorRole::weight) return std::make_unique<MossWeightQuantizer>(o.resync);
            return std::make_unique<FixedPlanQuantizer>(
                QuantizePlan::two_level_plan({o.group, o.global_rows, Format::e4m3}));
        });
}

} // namespace octet
