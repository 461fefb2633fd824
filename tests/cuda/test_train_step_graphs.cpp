// Training steps the GPU records once and replays (train/train_step.h) against the same steps run
// eagerly on a second backend: the same losses, gradient norms and weights, bit for bit, over
// steps with a changing learning rate and two micro-batches of fresh tokens each, with an
// evaluation and a sample's forward in between (which may move buffers: the step is recorded
// again), and MOSS's weight bounds advanced on the device and re-synced in eager micro-batches. And
// Ops::record itself: a replay runs the recorded ops again; what cannot be recorded is refused,
// naming it, and leaves the stream usable.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/rng.h"
#include "cuda/cuda_ops.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/gpu.h"
#include "tests/harness/tiny_training.h"
#include "train/train_step.h"

namespace octet {
namespace {

class TrainStepGraphsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        OCTET_SKIP_WITHOUT_GPU();
        seed_ = testing::fresh_seed();
        rng_ = Rng(seed_);
    }
    std::vector<int32_t> random_tokens(int64_t count, int64_t vocab) {
        std::vector<int32_t> t(static_cast<size_t>(count));
        for (int32_t& x : t) x = int32_t(rng_.next_u64() % uint64_t(vocab));
        return t;
    }
    uint64_t seed_ = 0;
    Rng rng_{1};
};

TEST_F(TrainStepGraphsTest, ReplayedStepsMatchEagerStepsBitForBit) {
    for (Flavor flavor : {Flavor::gpt2, Flavor::llama})
        for (const char* name : {"bf16", "te-current", "rowwise", "blockwise", "mxfp8", "fp8lm-o2",
                                 "moss", "moss:resync=2"}) {
            SCOPED_TRACE(std::string(flavor_name(flavor)) + " " + name + " " +
                         testing::seed_note(seed_));
            ModelConfig c = testing::tiny_config();
            c.flavor = flavor;
            const PrecisionPolicy policy = make_policy(name);
            const int64_t batch = 4, n = batch * c.seq_len;
            cuda::CudaOps graph_ops, eager_ops;
            Gpt<float> graphed(c, graph_ops, policy, seed_), eager(c, eager_ops, policy, seed_);
            AdamW graphed_opt(graph_ops, graphed.params().tensors(), graphed.params().values(),
                              policy, {});
            AdamW eager_opt(eager_ops, eager.params().tensors(), eager.params().values(), policy,
                            {});
            TrainStep graphed_step(graphed, graphed_opt, graph_ops, policy, true);
            TrainStep eager_step(eager, eager_opt, eager_ops, policy, false);
            ASSERT_TRUE(graphed_step.graphs()) << graphed_step.why_eager();
            ASSERT_FALSE(eager_step.graphs());

            for (int s = 0; s < 5; ++s) {
                const std::vector<int32_t> tokens = random_tokens(2 * n + 1, c.vocab_size);
                const std::vector<MicroBatch> micro = {{tokens.data(), tokens.data() + 1},
                                                       {tokens.data() + n, tokens.data() + n + 1}};
                const double lr = 2e-3 * (s + 1);
                const StepResult g = graphed_step.run(micro, batch, c.seq_len, lr);
                const StepResult e = eager_step.run(micro, batch, c.seq_len, lr);
                ASSERT_TRUE(std::isfinite(g.loss)) << "step " << s;
                EXPECT_EQ(g.loss, e.loss) << "step " << s;
                EXPECT_EQ(g.grad_norm, e.grad_norm) << "step " << s;
                if (s == 2) { // an evaluation between steps
                    const std::vector<int32_t> val = random_tokens(n + 1, c.vocab_size);
                    EXPECT_EQ(graphed.forward(val.data(), val.data() + 1, batch, c.seq_len),
                              eager.forward(val.data(), val.data() + 1, batch, c.seq_len));
                }
                if (s == 3) { // a sample's forward: one short sequence, no targets
                    const std::vector<int32_t> prompt = random_tokens(5, c.vocab_size);
                    graphed.forward(prompt.data(), nullptr, 1, 5);
                    eager.forward(prompt.data(), nullptr, 1, 5);
                    EXPECT_EQ(graphed.logits_row(4), eager.logits_row(4));
                }
            }
            // The micro-batch part from step 1's second micro-batch, the update from step 2.
            EXPECT_GE(graphed_step.recordings(), 2);
            // moss:resync=2 re-syncs its weight bounds in step 3's first micro-batch, eagerly,
            // replaying around it, then in the sample's forward after step 4; the bounds agree
            // bit for bit.
            EXPECT_EQ(graphed_step.eager_runs(), std::string(name) == "moss:resync=2" ? 1 : 0);
            EXPECT_EQ(graphed.recipe_state(), eager.recipe_state());
            const std::vector<float> a = graphed.params().download_values(),
                                     b = eager.params().download_values();
            ASSERT_EQ(a.size(), b.size());
            int64_t differ = 0;
            for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
            EXPECT_EQ(differ, 0) << "of " << a.size() << " weights differ";
        }
}

TEST_F(TrainStepGraphsTest, TeDelayedPlansEveryStepOnTheHostAndStepsEagerly) {
    cuda::CudaOps ops;
    const PrecisionPolicy policy = make_policy("te-delayed");
    Gpt<float> model(testing::tiny_config(), ops, policy, seed_);
    AdamW opt(ops, model.params().tensors(), model.params().values(), policy, {});
    TrainStep step(model, opt, ops, policy, true);
    EXPECT_FALSE(step.graphs());
    EXPECT_NE(step.why_eager().find("te-delayed"), std::string::npos) << step.why_eager();
    const std::vector<int32_t> tokens = random_tokens(2 * 32 + 1, 64);
    for (int s = 0; s < 3; ++s)
        EXPECT_TRUE(
            std::isfinite(step.run({{tokens.data(), tokens.data() + 1}}, 2, 32, 1e-3).loss));
    EXPECT_EQ(step.recordings(), 0);
}

TEST_F(TrainStepGraphsTest, RecordRunsNothingAndEachReplayRunsTheOps) {
    cuda::CudaOps ops;
    const int64_t count = 1000;
    std::vector<float> x0(static_cast<size_t>(count));
    for (float& v : x0) v = float(rng_.normal());
    Buffer<float> x(ops.memory());
    x.upload(x0.data(), count);
    const std::unique_ptr<OpsGraph> graph = ops.record([&] { ops.scale(x.data(), 2.0, count); });
    EXPECT_EQ(x.download(), x0); // recorded, not run
    graph->replay();
    graph->replay();
    const std::vector<float> after = x.download();
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(after[size_t(i)], 4.0f * x0[size_t(i)]) << i;
}

TEST_F(TrainStepGraphsTest, RecordRefusesAllocationsHostCopiesAndTheProfiler) {
    cuda::CudaOps ops;
    Buffer<float> x(ops.memory(), 64);
    x.zero();
    auto refused = [&](const std::function<void()>& enqueue, const std::string& what) {
        try {
            ops.record(enqueue);
            ADD_FAILURE() << what << " was recorded";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
        ops.scale(x.data(), 3.0, 64); // the stream is out of capture and runs ops again
        EXPECT_EQ(x.download(), std::vector<float>(64, 0.0f)) << "after " << what;
    };
    refused([&] { Buffer<float> grown(ops.memory(), 1 << 20); }, "an allocation of");
    refused([&] { x.download(); }, "a copy to the host");
    refused([&] { x.upload(std::vector<float>(64).data(), 64); }, "a copy from the host");
    ops.profiler().enable(true);
    refused([&] { ops.scale(x.data(), 2.0, 64); }, "profiler");
    ops.profiler().enable(false);
}

} // namespace
} // namespace octet
