// te-delayed: per-tensor delayed scaling (TE DelayedScaling, TE's default on Hopper).
// The tensor of step t is cast with a scale computed from the amax history of steps before t;
// then this step's amax joins the history. As in TE: the first step uses scale 1 (nothing is known
// yet), and when the history's amax is 0 or not finite the previous scale is kept.
// Options: history (1024; Megatron uses 1), algo = max | most_recent (max), margin (0),
// format = hybrid | e4m3 (hybrid).
#include <algorithm>
#include <deque>
#include <functional>
#include <string>

#include "common/error.h"
#include "recipe/recipes.h"

namespace octet {
namespace {

struct TeDelayedOptions {
    int64_t history;
    bool most_recent;
    int margin;
    bool hybrid;
};

class TeDelayedQuantizer final : public Quantizer {
  public:
    TeDelayedQuantizer(TeDelayedOptions o, Format f) : o_(o), format_(f) {}

    bool needs_tensor_amax() const override { return true; }
    bool amax_may_follow() const override { return true; }
    bool plan_is_steady() const override { return false; }
    // This tensor is cast with the scale from the history so far; then its amax joins it.
    QuantizePlan plan(float tensor_amax) override {
        const QuantizePlan p = plan_before_amax(nullptr);
        record_amax(tensor_amax);
        return p;
    }
    QuantizePlan plan_before_amax(std::function<float()> fetch) override {
        take_pending_amax();
        pending_amax_ = std::move(fetch);
        return QuantizePlan::per_tensor(format_, current_);
    }

    // [scale, scale_inv, history…]
    std::vector<double> state() const override {
        take_pending_amax();
        std::vector<double> s = {current_.scale, current_.scale_inv};
        s.insert(s.end(), history_.begin(), history_.end());
        return s;
    }
    void set_state(const std::vector<double>& s) override {
        if (s.size() < 2 || int64_t(s.size()) - 2 > o_.history)
            throw Error("checkpoint: te-delayed state does not match the recipe's history length");
        pending_amax_ = nullptr;
        current_ = {float(s[0]), float(s[1])};
        history_.assign(s.begin() + 2, s.end());
    }

  private:
    // Takes in the last tensor's amax if it is still on its way from the device.
    void take_pending_amax() const {
        if (!pending_amax_) return;
        const std::function<float()> fetch = std::move(pending_amax_);
        pending_amax_ = nullptr;
        record_amax(fetch());
    }
    void record_amax(float amax) const {
        history_.push_back(amax);
        if (int64_t(history_.size()) > o_.history) history_.pop_front();
        const float reduced =
            o_.most_recent ? history_.back() : *std::max_element(history_.begin(), history_.end());
        if (usable_amax(reduced))
            current_ = scale_from_amax(reduced, format_max(format_), o_.margin, false);
    }

    TeDelayedOptions o_;
    Format format_;
    // Mutable: a state read first takes in the amax still pending (plan_before_amax()).
    mutable std::deque<float> history_;
    mutable BlockScale current_ = unit_scale();
    mutable std::function<float()> pending_amax_;
};

} // namespace

std::unique_ptr<Recipe> make_te_delayed(RecipeOptions& options) {
    TeDelayedOptions o;
    o.history = options.get_int("history", 1024, 1, 1 << 20);
    o.most_recent = options.get_choice("algo", "max", {"max", "most_recent"}) == "most_recent";
    o.margin = int(options.get_int("margin", 0, 0, 32));
    o.hybrid = read_hybrid_format(options);
    return make_fixed_recipe(
        "te-delayed",
        "te-delayed: per-tensor delayed scaling, history=" + std::to_string(o.history) +
            ", algo=" + (o.most_recent ? "most_recent" : "max") +
            ", margin=" + std::to_string(o.margin) + ", " + hybrid_description(o.hybrid),
        [=](TensorRole role) {
            return std::make_unique<TeDelayedQuantizer>(o, hybrid_format(o.hybrid, role));
        });
}

} // namespace octet
