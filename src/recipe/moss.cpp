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

#include "common/error.h"
#include "ops/memory.h"
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
    explicit MossWeightQuantizer(int64_t resync) : schedule_(resync) {}

    bool predicts_bound() const override { return true; }
    void bind_bound(double* slot, Memory& memory) override {
        slot_ = slot;
        memory_ = &memory;
    }
    bool plan_is_steady() const override { return !schedule_.resync_due(); }
    // Unbound (a quantizer outside a model), the bound is the quantizer's own, on the host: a
    // sync takes the amax the caller measures, and the plan carries the scale itself.
    bool needs_tensor_amax() const override { return !memory_ && schedule_.sync_due(); }
    QuantizePlan plan(float tensor_amax) override {
        const bool sync = schedule_.sync_due();
        if (sync) schedule_.synced();
        if (memory_) return QuantizePlan::per_tensor_bound(Format::e4m3, slot_, sync);
        if (sync) own_ = double(tensor_amax);
        return QuantizePlan::per_tensor(Format::e4m3,
                                        scale_from_bound(own_, format_max(Format::e4m3)));
    }
    void on_optimizer_step(const OptimizerStep& step) override {
        if (!memory_)
            throw Error("moss: an optimizer step reached a weight quantizer whose bound no model "
                        "advances (bind_bound())");
        schedule_.step(step);
    }
    // [bound, steps since sync, synced]
    std::vector<double> state() const override {
        double bound = own_;
        if (memory_) memory_->to_host(&bound, slot_, sizeof bound);
        std::vector<double> s = {bound};
        schedule_.state(s);
        return s;
    }
    void set_state(const std::vector<double>& s) override {
        if (s.size() != 3) throw Error("checkpoint: moss weight-scale state must hold 3 values");
        if (memory_)
            memory_->from_host(slot_, &s[0], sizeof(double));
        else
            own_ = s[0];
        schedule_.set_state(s[1], s[2]);
    }

  private:
    WeightBoundSchedule schedule_;
    double own_ = 0.0;       // the bound until bind_bound()
    double* slot_ = nullptr; // then the bound, in *memory_
    Memory* memory_ = nullptr;
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
