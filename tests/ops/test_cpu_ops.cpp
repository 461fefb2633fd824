// Every op of the CPU backend: backward against float64 central finite differences of the
// forward (loss = Σ out · R with fixed random R), on small random shapes; the float kernels
// against the double ones. Tolerances: gradients 1e-6 relative (+1e-8 absolute) in float64;
// float vs double 1e-5 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "common/error.h"
#include "cpu/cpu_ops.h"
#include "tests/harness/fresh_seed.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::seed_note;
using Vec = std::vector<double>;

Vec random_vec(Rng& rng, size_t n, double scale = 1.0) {
    Vec v(n);
    for (double& x : v) x = rng.normal() * scale;
    return v;
}

double dot(const Vec& a, const Vec& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

// An input of an op and how its backward delivers the gradient (ops.h): written (activations),
// or added to what the buffer holds (parameters, and the norms' d_x).
struct Input {
    Vec* values;
    bool accumulated;
};
Input written(Vec* v) {
    return {v, false};
}
Input added(Vec* v) {
    return {v, true};
}

// Checks d(Σ forward() · r)/d(input) for every element of every input against `backward`, which
// receives r as d_out. Buffers of written gradients start as NaN, so reading them fails; those of
// added ones start random, and that prior is subtracted.
void check_gradients(std::vector<Input> inputs, const std::function<Vec()>& forward,
                     const std::function<void(const Vec& d_out, std::vector<Vec>& grads)>& backward,
                     Rng& rng, const char* what) {
    const Vec out = forward();
    const Vec r = random_vec(rng, out.size());
    std::vector<Vec> grads, priors;
    for (const Input& in : inputs) {
        priors.push_back(in.accumulated ? random_vec(rng, in.values->size())
                                        : Vec(in.values->size(), 0.0));
        grads.push_back(in.accumulated ? priors.back() : Vec(in.values->size(), std::nan("")));
    }
    backward(r, grads);
    const double h = 1e-5;
    for (size_t k = 0; k < inputs.size(); ++k) {
        Vec& x = *inputs[k].values;
        for (size_t i = 0; i < x.size(); ++i) {
            const double saved = x[i];
            x[i] = saved + h;
            const double up = dot(forward(), r);
            x[i] = saved - h;
            const double down = dot(forward(), r);
            x[i] = saved;
            const double numeric = (up - down) / (2 * h);
            const double analytic = grads[k][i] - priors[k][i];
            ASSERT_NEAR(analytic, numeric, 1e-6 * std::fabs(numeric) + 1e-8)
                << what << ": input " << k << " element " << i;
            ASSERT_FALSE(std::isnan(analytic));
        }
    }
}

class CpuOpsTest : public ::testing::Test {
  protected:
    CpuOps<double> ops;
    uint64_t seed = fresh_seed();
    Rng rng{seed};
};

TEST_F(CpuOpsTest, Embedding) {
    SCOPED_TRACE(seed_note(seed));
    const int64_t b = 2, t = 3, c = 4, v = 5;
    std::vector<int32_t> tokens = {1, 4, 1, 0, 2, 1};
    Vec wte = random_vec(rng, v * c), wpe = random_vec(rng, t * c);
    check_gradients(
        {added(&wte), added(&wpe)},
        [&] {
            Vec out(b * t * c);
            ops.embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), b, t, c);
            return out;
        },
        [&](const Vec& d, std::vector<Vec>& g) {
            ops.embedding_backward(g[0].data(), g[1].data(), d.data(), tokens.data(), b, t, c);
        },
        rng, "embedding");
}

TEST_F(CpuOpsTest, LayerNorm) {
    SCOPED_TRACE(seed_note(seed));
    const int64_t n = 5, c = 7;
    Vec x = random_vec(rng, n * c, 2.0), w = random_vec(rng, c), bias = random_vec(rng, c);
    Vec mean(n), rstd(n);
    auto forward = [&] {
        Vec out(n * c);
        ops.layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), bias.data(),
                              n, c, 1e-5, nullptr);
        return out;
    };
    check_gradients(
        {added(&x), added(&w), added(&bias)}, forward,
        [&](const Vec& d, std::vector<Vec>& g) {
            forward();
            ops.layernorm_backward(g[0].data(), g[1].data(), g[2].data(), d.data(), x.data(),
                                   w.data(), mean.data(), rstd.data(), n, c, nullptr, nullptr);
        },
        rng, "layernorm");
}

TEST_F(CpuOpsTest, RmsNorm) {
    SCOPED_TRACE(seed_note(seed));
    const int64_t n = 5, c = 6;
    Vec x = random_vec(rng, n * c, 2.0), w = random_vec(rng, c), rstd(n);
    auto forward = [&] {
        Vec out(n * c);
        ops.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, c, 1e-5, nullptr);
        return out;
    };
    check_gradients(
        {added(&x), added(&w)}, forward,
        [&](const Vec& d, std::vector<Vec>& g) {
            forward();
            ops.rmsnorm_backward(g[0].data(), g[1].data(), d.data(), x.data(), w.data(),
                                 rstd.data(), n, c, nullptr, nullptr);
        },
        rng, "rmsnorm");
}

TEST_F(CpuOpsTest, Linear) {
    SCOPED_TRACE(seed_note(seed));
    const int64_t n = 4, k = 5, m = 3;
    Vec x = random_vec(rng, n * k), w = random_vec(rng, m * k), bias = random_vec(rng, m);
    check_gradients(
        {written(&x), added(&w), added(&bias)},
        [&] {
            Vec out(n * m);
            ops.linear_forward({out.data(), x.data(), w.data(), bias.data(), n, k, m, nullptr});
            return out;
        },
        [&](const Vec& d, std::vector<Vec>& g) {
            ops.linear_backward({g[0].data(), g[1].data(), g[2].data(), d.data(), x.data(),
                                 w.data(), n, k, m, nullptr});
        },
        rng, "linear");
}

// An empty batch contributes nothing: a written dW is zero, an accumulated one and the bias
// gradient keep what they held.
TEST_F(CpuOpsTest, LinearBackwardOfAnEmptyBatch) {
    SCOPED_TRACE(seed_note(seed));
    const int64_t k = 5, m = 3;
    const Vec w = random_vec(rng, m * k), held = random_vec(rng, m * k),
              bias_held = random_vec(rng, m);
    for (bool add : {false, true}) {
        Vec dw = held, db = bias_held;
        LinearBackwardArgs<double> args{nullptr,  dw.data(), db.data(), nullptr, nullptr,
                                        w.data(), 0,         k,         m,       nullptr};
        args.add_to_d_weight = add;
        ops.linear_backward(args);
        EXPECT_EQ(dw, add ? held : Vec(size_t(m * k), 0.0)) << "add_to_d_weight " << add;
        EXPECT_EQ(db, bias_held);
    }
}

TEST_F(CpuOpsTest, CausalAttention) {
    SCOPED_TRACE(seed_note(seed));
    const AttentionShape s{2, 4, 2, 3};
    const int64_t c = s.heads * s.head_size;
    Vec qkv = random_vec(rng, s.batch * s.seq * 3 * c);
    Vec att(s.batch * s.heads * s.seq * s.seq);
    auto forward = [&] {
        Vec out(s.batch * s.seq * c);
        ops.attention_forward(out.data(), att.data(), qkv.data(), s, nullptr);
        return out;
    };
    check_gradients(
        {written(&qkv)}, forward,
        [&](const Vec& d, std::vector<Vec>& g) {
            forward();
            ops.attention_backward(g[0].data(), d.data(), qkv.data(), att.data(), s, nullptr);
        },
        rng, "attention");
    // Causality: the output at t does not depend on later tokens.
    const Vec before = forward();
    qkv[(1 * s.seq + 3) * 3 * c + 2 * c] += 1.0; // v of the last token, batch 1
    const Vec after = forward();
    for (int64_t t = 0; t < 3; ++t)
        for (int64_t i = 0; i < c; ++i)
            EXPECT_EQ(before[(1 * s.seq + t) * c + i], after[(1 * s.seq + t) * c + i]);
}

TEST_F(CpuOpsTest, RotaryEmbedding) {
    SCOPED_TRACE(seed_note(seed));
    const AttentionShape s{2, 5, 2, 4};
    Vec qkv = random_vec(rng, s.batch * s.seq * 3 * s.heads * s.head_size);
    check_gradients(
        {written(&qkv)},
        [&] {
            Vec out(qkv.size());
            ops.rope_forward(out.data(), qkv.data(), s, 10000.0);
            return out;
        },
        [&](const Vec& d, std::vector<Vec>& g) {
            ops.rope_backward(g[0].data(), d.data(), s, 10000.0, nullptr);
        },
        rng, "rope");
    // A rotation: norms of each head's q are kept; position 0 is unchanged.
    Vec out(qkv.size());
    ops.rope_forward(out.data(), qkv.data(), s, 10000.0);
    for (int64_t i = 0; i < 3 * s.heads * s.head_size; ++i) EXPECT_EQ(out[i], qkv[i]);
}

TEST_F(CpuOpsTest, GeluAndSwiGlu) {
    SCOPED_TRACE(seed_note(seed));
    Vec x = random_vec(rng, 24, 2.0);
    check_gradients(
        {written(&x)},
        [&] {
            Vec out(x.size());
            ops.gelu_forward(out.data(), x.data(), int64_t(x.size()), nullptr, nullptr);
            return out;
        },
        [&](const Vec& d, std::vector<Vec>& g) {
            ops.gelu_backward(g[0].data(), d.data(), x.data(), int64_t(x.size()), nullptr, nullptr);
        },
        rng, "gelu");
    const int64_t n = 3, h = 4;
    Vec y = random_vec(rng, n * 2 * h, 2.0);
    check_gradients(
        {written(&y)},
        [&] {
            Vec out(n * h);
            ops.swiglu_forward(out.data(), y.data(), n, h, nullptr, nullptr);
            return out;
        },
        [&](const Vec& d, std::vector<Vec>& g) {
            ops.swiglu_backward(g[0].data(), d.data(), y.data(), n, h, nullptr, nullptr);
        },
        rng, "swiglu");
}

TEST_F(CpuOpsTest, SoftmaxCrossEntropy) {
    SCOPED_TRACE(seed_note(seed));
    const int64_t n = 4, v = 6;
    Vec logits = random_vec(rng, n * v, 3.0);
    std::vector<int32_t> targets = {0, 5, 2, 2};
    // The gradient of the mean loss: d_loss = 1/N for every row.
    auto run = [&](Vec& losses, Vec& d_logits, const Vec& z) {
        ops.softmax_xent(losses.data(), d_logits.data(), z.data(), targets.data(), 1.0 / n, n, v,
                         nullptr);
    };
    auto losses_at = [&] {
        Vec losses(n), unused(n * v);
        run(losses, unused, logits);
        return losses;
    };
    Vec base(n), grad(n * v, std::nan(""));
    run(base, grad, logits);
    for (size_t i = 0; i < logits.size(); ++i) {
        const double saved = logits[i];
        logits[i] = saved + 1e-5;
        const Vec up = losses_at();
        logits[i] = saved - 1e-5;
        const Vec down = losses_at();
        logits[i] = saved;
        double numeric = 0;
        for (int64_t j = 0; j < n; ++j) numeric += (up[j] - down[j]) / (2e-5) / double(n);
        ASSERT_NEAR(grad[i], numeric, 1e-6 * std::fabs(numeric) + 1e-8) << "logit " << i;
    }
    // In place (one buffer for the logits and their gradient), as the model runs it.
    Vec buffer = logits, losses(n);
    run(losses, buffer, buffer);
    EXPECT_EQ(losses, base);
    EXPECT_EQ(buffer, grad);
    targets[1] = int32_t(v); // out of the vocabulary
    EXPECT_THROW(losses_at(), Error);
}

// The float kernels against the double ones on the same inputs: same formulas, float rounding.
TEST_F(CpuOpsTest, FloatKernelsAgreeWithDouble) {
    SCOPED_TRACE(seed_note(seed));
    CpuOps<float> fops;
    const AttentionShape s{2, 16, 4, 8};
    const int64_t c = s.heads * s.head_size, n = s.batch * s.seq;
    const Vec qkv = random_vec(rng, n * 3 * c);
    std::vector<float> qkv_f(qkv.begin(), qkv.end());
    Vec att(s.batch * s.heads * s.seq * s.seq), out(n * c);
    std::vector<float> att_f(att.size()), out_f(out.size());
    ops.attention_forward(out.data(), att.data(), qkv.data(), s, nullptr);
    fops.attention_forward(out_f.data(), att_f.data(), qkv_f.data(), s, nullptr);
    for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out_f[i], out[i], 1e-5 * (1 + std::fabs(out[i])));

    const Vec w = random_vec(rng, c), b = random_vec(rng, c);
    std::vector<float> w_f(w.begin(), w.end()), b_f(b.begin(), b.end());
    Vec ln(n * c), mean(n), rstd(n);
    std::vector<float> ln_f(ln.size()), mean_f(n), rstd_f(n);
    ops.layernorm_forward(ln.data(), mean.data(), rstd.data(), out.data(), w.data(), b.data(), n, c,
                          1e-5, nullptr);
    fops.layernorm_forward(ln_f.data(), mean_f.data(), rstd_f.data(), out_f.data(), w_f.data(),
                           b_f.data(), n, c, 1e-5, nullptr);
    for (size_t i = 0; i < ln.size(); ++i)
        ASSERT_NEAR(ln_f[i], ln[i], 1e-4 * (1 + std::fabs(ln[i])));
}

} // namespace
} // namespace octet
