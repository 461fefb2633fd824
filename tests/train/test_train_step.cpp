// TrainStep on the CPU, which records nothing: a step over micro-batches is the plain sequence
// (zero, forward and backward per micro-batch, the mean, AdamW), bit for bit; which recipes may
// replay a recorded step; MOSS's weight bounds advanced by the step; AdamW::step in parts. The
// GPU's recorded steps are checked against its eager ones in tests/cuda/test_train_step_graphs.cpp.
#include <gtest/gtest.h>

#include "common/error.h"
#include "common/rng.h"
#include "cpu/cpu_ops.h"
#include "recipe/block_quantize.h"
#include "recipe/moss_weight_scaling.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/tiny_training.h"
#include "train/train_step.h"

namespace octet {
namespace {

TEST(TrainStep, IsTheEagerSequenceOverMicroBatches) {
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    const ModelConfig c = testing::tiny_config();
    const int64_t batch = 2;
    const PrecisionPolicy policy = make_policy("blockwise");
    CpuOps<float> ops;
    Gpt<float> model(c, ops, policy, seed), reference(c, ops, policy, seed);
    AdamW opt(ops, model.params().tensors(), model.params().values(), policy, {});
    AdamW ref_opt(ops, reference.params().tensors(), reference.params().values(), policy, {});
    TrainStep step(model, opt, ops, policy, true);
    EXPECT_FALSE(step.graphs());
    EXPECT_EQ(step.why_eager(), "the backend runs ops as they are called");

    std::vector<int32_t> tokens(size_t(3 * batch * c.seq_len + 1));
    for (int32_t& t : tokens) t = int32_t(rng.next_u64() % uint64_t(c.vocab_size));
    const int64_t n = batch * c.seq_len;
    for (int s = 0; s < 3; ++s) {
        const double lr = 1e-3 * (s + 1);
        std::vector<MicroBatch> micro;
        for (int64_t i = 0; i < 3; ++i)
            micro.push_back({tokens.data() + i * n, tokens.data() + i * n + 1});
        const StepResult r = step.run(micro, batch, c.seq_len, lr);

        reference.zero_grads();
        double loss = 0;
        for (const MicroBatch& mb : micro) {
            loss += double(reference.forward(mb.tokens, mb.targets, batch, c.seq_len));
            reference.backward();
        }
        ops.scale(reference.params().grads(), 1.0 / 3.0, reference.params().size());
        const double norm =
            ref_opt.step(reference.params().values(), reference.params().grads(), lr);
        EXPECT_EQ(r.loss, loss / 3.0) << "step " << s;
        EXPECT_EQ(r.grad_norm, norm) << "step " << s;
        EXPECT_TRUE(std::isfinite(r.loss));
    }
    const float* a = model.params().values();
    const float* b = reference.params().values();
    for (int64_t i = 0; i < model.params().size(); ++i) ASSERT_EQ(a[i], b[i]) << "parameter " << i;
    EXPECT_EQ(step.recordings(), 0);
    EXPECT_THROW(step.run({}, batch, c.seq_len, 1e-3), Error);
}

// Only te-delayed plans every step from amaxes read back on the host, so only it never replays a
// recorded step (moss's bounds live in the backend's memory).
TEST(TrainStep, OnlyTeDelayedPlansEveryStepAnew) {
    for (const std::string& name : policy_names())
        EXPECT_EQ(make_policy(name).plans_change_every_step(), name == "te-delayed") << name;
}

// The moss weight quantizers' states in recipe_state() order ([bound, steps since sync, synced]
// of each FP8 layer's weight quantizer: the second of its six quantizers).
std::vector<std::vector<double>> moss_weight_states(const std::vector<double>& recipe_state) {
    std::vector<std::vector<double>> out;
    size_t at = 0;
    for (int q = 0; at < recipe_state.size(); q = (q + 1) % 6) {
        const size_t n = size_t(recipe_state[at++]);
        if (q == 1 && n == 3)
            out.emplace_back(recipe_state.begin() + long(at), recipe_state.begin() + long(at + n));
        at += n;
    }
    return out;
}

// moss on a model: every linear weight's bound, advanced by each update, stays above the weight's
// true amax, and is re-synced to it every `resync` steps, in the eager micro-batch that
// plans_steady() announces.
TEST(TrainStep, MossBoundsFollowTheUpdatesAndResyncOnSchedule) {
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    const ModelConfig c = testing::tiny_config();
    const PrecisionPolicy policy = make_policy("moss:resync=3");
    CpuOps<float> ops;
    Gpt<float> model(c, ops, policy, seed);
    AdamW opt(ops, model.params().tensors(), model.params().values(), policy, {});
    TrainStep step(model, opt, ops, policy, true);
    // The linear weights, in the order of recipe_state(): per block qkv, proj, fc, fc2.
    std::vector<const ParamTensor*> weights;
    for (const ParamTensor& t : model.params().tensors())
        if (t.shape.size() == 2 && t.name.starts_with("h.")) weights.push_back(&t);
    ASSERT_EQ(weights.size(), size_t(4 * c.n_layer));
    auto amax_of = [&](const ParamTensor& t) {
        return double(tensor_amax({model.params().values() + t.offset, 1, t.numel}));
    };

    std::vector<int32_t> tokens(size_t(2 * c.seq_len + 1));
    for (int s = 1; s <= 7; ++s) {
        for (int32_t& t : tokens) t = int32_t(rng.next_u64() % uint64_t(c.vocab_size));
        // Steps 4 and 7 follow three updates since the last sync.
        EXPECT_EQ(model.plans_steady(), s != 4 && s != 7) << "step " << s;
        std::vector<double> amax_before;
        for (const ParamTensor* w : weights) amax_before.push_back(amax_of(*w));
        step.run({{tokens.data(), tokens.data() + 1}}, 2, c.seq_len, 3e-2);
        const std::vector<std::vector<double>> states = moss_weight_states(model.recipe_state());
        ASSERT_EQ(states.size(), weights.size());
        for (size_t i = 0; i < weights.size(); ++i) {
            SCOPED_TRACE(weights[i]->name + " step " + std::to_string(s));
            EXPECT_GE(states[i][0], amax_of(*weights[i]));
            // Synced in this step's forward (the first, 4 and 7), then advanced by one update.
            const bool synced_now = s == 1 || s == 4 || s == 7;
            EXPECT_EQ(states[i][1], synced_now ? 1.0 : double((s - 1) % 3 + 1));
            if (synced_now) {
                EXPECT_EQ(states[i][0],
                          advance_weight_bound(amax_before[i], opt.hyper()->decay, opt.hyper()->lr,
                                               opt.hyper()->max_update));
            }
            // lr 3e-2 on weights of 0.02: the bound grows by about lr per step.
            EXPECT_LT(states[i][0], amax_before[i] + 3 * 3e-2 * 1.2);
        }
    }
}

TEST(TrainStep, OptimizerUpdatesOnlyAfterPrepare) {
    CpuOps<float> ops;
    const std::vector<ParamTensor> tensors = {{"w", {4}, 0, 4, true}};
    std::vector<float> w = {1, 2, 3, 4}, g = {0.5f, -0.5f, 0.25f, 1};
    AdamW opt(ops, tensors, w.data(), make_policy("bf16"), {});
    EXPECT_THROW(opt.enqueue(w.data(), g.data()), Error);
    opt.prepare(1e-2);
    opt.enqueue(w.data(), g.data());
    EXPECT_DOUBLE_EQ(opt.grad_norm(), std::sqrt(0.25 + 0.25 + 0.0625 + 1.0));
    EXPECT_EQ(opt.last_step().step, 1);
    EXPECT_THROW(opt.prepare(-1.0), Error);
}

} // namespace
} // namespace octet
