// The microscaled GEMM (cuda/microscaled_gemm.h) against a float64 reference on the dequantized
// operands. Fresh random operands every run, quantized the way the recipes do: normal values
// spread over 2^±4 between rows, each group's scale amax/448, as a power of two (MOSS's E8M0 local
// scales) or any FP32 value (DeepSeek's). Shapes that are not multiples of the tile, odd m, n, k
// included; output poisoned with NaN before each run. DeepGEMM's measure
// 1 − 2Σxy/Σ(x²+y²) < 1e-3 and relative Frobenius error < 2e-3, plus 2^-9 for BF16 output (its
// rounding alone may cost that much); NaN never passes. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <cuda_bf16.h>

#include "cuda/check.h"
#include "cuda/device_memory.h"
#include "cuda/microscaled_gemm.h"
#include "numerics/formats.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/gemm_agreement.h"
#include "tests/harness/gpu.h"

namespace octet {
namespace {

struct Case {
    int64_t m, n, k;
    cuda::MicroscaledB b_scaling;
    bool pow2_scales, out_fp32;
    float alpha, beta; // alpha 1: no alpha pointer
};

std::string describe(const Case& c) {
    return std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) +
           (c.b_scaling == cuda::MicroscaledB::blocks_128x128 ? " b:128x128" : " b:1x128") +
           (c.pow2_scales ? " pow2" : " fp32-scales") + (c.out_fp32 ? " out:fp32" : " out:bf16") +
           " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta);
}

// Quantizes `values` (rows × k) to E4M3 codes with one scale per group: group_rows rows by 128
// columns, scale_inv at scales[(col / 128) * stride + row / group_rows].
void quantize(const std::vector<float>& values, int64_t rows, int64_t k, int64_t group_rows,
              bool pow2, std::vector<uint8_t>& codes, std::vector<float>& scales, int64_t stride) {
    codes.resize(values.size());
    for (int64_t g = 0; g < (k + 127) / 128; ++g)
        for (int64_t r0 = 0; r0 < rows; r0 += group_rows) {
            const int64_t r1 = std::min(rows, r0 + group_rows), c0 = g * 128,
                          c1 = std::min(k, c0 + 128);
            float amax = 0;
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c)
                    amax = std::max(amax, std::fabs(values[size_t(r * k + c)]));
            float scale_inv = amax > 0 ? amax / 448.0f : 1.0f;
            if (pow2) scale_inv = std::exp2(std::ceil(std::log2(scale_inv)));
            scales[size_t(g * stride + r0 / group_rows)] = scale_inv;
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c)
                    codes[size_t(r * k + c)] = uint8_t(encode(values[size_t(r * k + c)] / scale_inv,
                                                              Format::e4m3, Overflow::saturate));
        }
}

void run_case(const Case& c, Rng& rng) {
    SCOPED_TRACE(describe(c));
    const int64_t m = c.m, n = c.n, k = c.k, kb = (k + 127) / 128, nb = (n + 127) / 128;
    const int64_t sa_stride = cuda::microscaled_a_scale_stride(m);
    const bool blocks = c.b_scaling == cuda::MicroscaledB::blocks_128x128;
    const int64_t sb_stride = blocks ? nb : n;
    // a's padding rows hold NaN scales: the kernel must not let them reach the output.
    std::vector<uint8_t> a, b;
    std::vector<float> sa(size_t(kb * sa_stride), std::nanf("")), sb(size_t(kb * sb_stride));
    quantize(testing::random_matrix(rng, m, k, 4.0), m, k, 1, c.pow2_scales, a, sa, sa_stride);
    quantize(testing::random_matrix(rng, n, k, 4.0), n, k, blocks ? 128 : 1, c.pow2_scales, b, sb,
             sb_stride);
    std::vector<float> prior(size_t(m * n));
    for (auto& v : prior) v = float(rng.normal());

    // float64 reference on the dequantized operands.
    std::vector<double> a_deq(a.size()), b_deq(b.size()), ref(size_t(m * n));
    for (int64_t r = 0; r < m; ++r)
        for (int64_t i = 0; i < k; ++i)
            a_deq[size_t(r * k + i)] = double(decode(a[size_t(r * k + i)], Format::e4m3)) *
                                       sa[size_t((i / 128) * sa_stride + r)];
    for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < k; ++i)
            b_deq[size_t(r * k + i)] = double(decode(b[size_t(r * k + i)], Format::e4m3)) *
                                       sb[size_t((i / 128) * sb_stride + (blocks ? r / 128 : r))];
    for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t i = 0; i < k; ++i)
                s += a_deq[size_t(r * k + i)] * b_deq[size_t(j * k + i)];
            ref[size_t(r * n + j)] =
                double(c.alpha) * s + double(c.beta) * prior[size_t(r * n + j)];
        }

    cuda::DeviceMemory memory(nullptr);
    Buffer<uint8_t> da(memory), db(memory), dout(memory);
    Buffer<float> dsa(memory), dsb(memory), dalpha(memory);
    da.upload(a.data(), int64_t(a.size()));
    db.upload(b.data(), int64_t(b.size()));
    dsa.upload(sa.data(), int64_t(sa.size()));
    dsb.upload(sb.data(), int64_t(sb.size()));
    dalpha.upload(&c.alpha, 1);
    const size_t out_bytes = size_t(m * n) * (c.out_fp32 ? 4 : 2);
    dout.resize(int64_t(out_bytes));
    if (c.beta != 0.0f)
        dout.memory().from_host(dout.data(), prior.data(), out_bytes);
    else
        OCTET_CUDA_CHECK(cudaMemset(dout.data(), 0xFF, out_bytes)); // NaN poison

    cuda::MicroscaledGemm gemm(memory);
    gemm.run({da.data(), db.data(), dsa.data(), dsb.data(), c.b_scaling,
              c.alpha == 1.0f ? nullptr : dalpha.data(), dout.data(), c.out_fp32, c.beta, m, n, k},
             nullptr);
    OCTET_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<uint8_t> raw = dout.download();

    const testing::GemmAgreement agreement = testing::gemm_agreement(
        ref.size(), [&](size_t i) { return ref[i]; },
        [&](size_t i) {
            if (c.out_fp32) {
                float f;
                std::memcpy(&f, &raw[i * 4], 4);
                return double(f);
            }
            __nv_bfloat16 h;
            std::memcpy(&h, &raw[i * 2], 2);
            return double(__bfloat162float(h));
        });
    EXPECT_FALSE(agreement.any_nan);
    EXPECT_LT(agreement.calc_diff, 1e-3);
    EXPECT_LT(agreement.rel_error, c.out_fp32 ? 2e-3 : 2e-3 + std::exp2(-9));
}

TEST(MicroscaledGemm, MatchesFloat64ReferenceOnTileAndOddShapes) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    using B = cuda::MicroscaledB;
    std::vector<Case> cases = {
        {256, 384, 512, B::blocks_128x128, true, false, 1.0f, 0.0f},
        {256, 384, 512, B::groups_1x128, true, true, 0.375f, 0.0f},
        {1000, 776, 1040, B::blocks_128x128, false, false, 1.0f, 0.0f},
        {129, 130, 100, B::blocks_128x128, true, true, 2.0f, 1.0f},
        {7, 9, 33, B::groups_1x128, false, false, 1.0f, 0.0f},
        {333, 257, 1000, B::groups_1x128, true, true, 1.0f, 1.0f},
        {130, 129, 1, B::blocks_128x128, false, true, 0.5f, 0.0f},
    };
    // Fresh random shapes every run, odd ones likely.
    for (int i = 0; i < 4; ++i)
        cases.push_back({1 + int64_t(rng.uniform() * 600), 1 + int64_t(rng.uniform() * 600),
                         1 + int64_t(rng.uniform() * 900),
                         i % 2 ? B::groups_1x128 : B::blocks_128x128, i < 2, i % 3 == 0,
                         i == 1 ? 0.25f : 1.0f, i == 3 ? 1.0f : 0.0f});
    for (const Case& c : cases) run_case(c, rng);
}

TEST(MicroscaledGemm, RefusesBetaWithBf16Output) {
    OCTET_SKIP_WITHOUT_GPU();
    cuda::DeviceMemory memory(nullptr);
    cuda::MicroscaledGemm gemm(memory);
    EXPECT_THROW(gemm.run({nullptr, nullptr, nullptr, nullptr, cuda::MicroscaledB::blocks_128x128,
                           nullptr, nullptr, false, 1.0f, 16, 16, 16},
                          nullptr),
                 Error);
}

} // namespace
} // namespace octet
