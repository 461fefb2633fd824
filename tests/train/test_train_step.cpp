// TrainStep on the CPU, which records nothing: a step over micro-batches is the plain sequence
// (zero, forward and backward per micro-batch, the mean, AdamW), bit for bit; which recipes may
// replay a recorded step; AdamW::step in parts. The GPU's recorded steps are checked against its
// eager ones in tests/cuda/test_train_step_graphs.cpp.
#include <gtest/gtest.h>

#include "common/error.h"
#include "common/rng.h"
#include "cpu/cpu_ops.h"
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

// Only recipes whose plans are the same every step may replay a recorded step.
TEST(TrainStep, RecipesWithHostStateRunEagerly) {
    for (const std::string& name : policy_names()) {
        const bool keeps = name == "te-delayed" || name == "moss";
        EXPECT_EQ(make_policy(name).quantizers_keep_state(), keeps) << name;
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
