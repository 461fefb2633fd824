// What a linear layer writes for the op that alone reads it (ops.h's `producer` and `reader`:
// GELU/SwiGLU, the loss, the norms' backward) on the CPU, the oracle of the GPU's packed BF16: a
// BF16 layer returns autocast's output, its accumulator plus the BF16-rounded bias, rounded to
// BF16; an FP8 layer its accumulator plus the FP32 bias, rounded to BF16 (TransformerEngine's
// epilogue); the dgrad of both rounds d_in: the same bits as rounding the unflagged results.
// Exact layers write what they always write.
#include <gtest/gtest.h>

#include <string>

#include "cpu/cpu_ops.h"
#include "numerics/formats.h"
#include "ops/linear_precision.h"
#include "recipe/recipe.h"
#include "tests/harness/fresh_seed.h"

namespace octet {
namespace {

using testing::fresh_seed;
using testing::seed_note;

float bf16(float v) {
    return round_to_format(v, Format::bf16, Overflow::ieee);
}

TEST(ElementwiseOutputs, Bf16AndFp8LayersRoundWhatTheyWriteForTheirReaders) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const int64_t n = 70, k = 96, m = 44;
    const std::vector<float> x = testing::random_matrix(rng, n, k, 1.0),
                             w = testing::random_matrix(rng, m, k, 1.0),
                             b = testing::random_matrix(rng, 1, m, 1.0),
                             dy = testing::random_matrix(rng, n, m, 1.0);
    CpuOps<float> ops;
    for (const std::string spec : {"bf16", "fp32", "blockwise"}) {
        SCOPED_TRACE(spec);
        const bool rounds = spec != "fp32", bf16_bias = spec == "bf16";
        auto make = [&] {
            return spec == "bf16"   ? LinearPrecision::bf16()
                   : spec == "fp32" ? LinearPrecision::exact()
                                    : LinearPrecision::fp8(*make_recipe(spec));
        };
        auto plain = make(), flagged = make();
        std::vector<float> acc(size_t(n * m)), y(size_t(n * m)), dx(size_t(n * k)),
            dx_flagged(size_t(n * k)), dw(size_t(m * k), 0.0f);
        ops.linear_forward({acc.data(), x.data(), w.data(), nullptr, n, k, m, plain.get()});
        LinearForwardArgs<float> forward{y.data(), x.data(), w.data(), b.data(),
                                         n,        k,        m,        flagged.get()};
        forward.to_elementwise = true;
        ops.linear_forward(forward);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < m; ++j) {
                const size_t at = size_t(i * m + j);
                const float sum = acc[at] + (bf16_bias ? bf16(b[size_t(j)]) : b[size_t(j)]);
                const float want = rounds ? bf16(sum) : sum;
                ASSERT_EQ(y[at], want) << "out[" << i << ", " << j << "]";
            }
        ops.linear_backward(
            {dx.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), n, k, m, plain.get()});
        LinearBackwardArgs<float> backward{
            dx_flagged.data(), dw.data(), nullptr, dy.data(), x.data(),
            w.data(),          n,         k,       m,         flagged.get()};
        backward.d_in_for_reader = true;
        ops.linear_backward(backward);
        for (size_t i = 0; i < dx.size(); ++i)
            ASSERT_EQ(dx_flagged[i], rounds ? bf16(dx[i]) : dx[i]) << "d_in " << i;
    }
}

} // namespace
} // namespace octet
