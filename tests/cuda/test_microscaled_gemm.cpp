// The microscaled GEMM (cuda/microscaled_gemm.h) against a float64 reference on the dequantized
// operands. Fresh random operands every run, quantized the way the recipes do: normal values
// spread over 2^±4 between rows, each group's scale amax/448, as a power of two (MOSS's E8M0 local
// scales) or any FP32 value (DeepSeek's). Shapes that are not multiples of the tile, odd m, n, k
// included; output poisoned with NaN before each run. DeepGEMM's measure
// 1 − 2Σxy/Σ(x²+y²) < 1e-3 and relative Frobenius error < 2e-3, plus 2^-9 for BF16 output (its
// rounding alone may cost that much); NaN never passes. The epilogue's bias and its beta · c, c
// in out or apart from it, are part of the reference. Skips without a GPU.
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
    int group; // along K, for a and for b's groups
    cuda::MicroscaledB b_scaling;
    Format a_format;
    bool pow2_scales, out_fp32;
    float alpha, beta;    // alpha 1 (and b per-tensor's scale 1): no alpha pointer
    bool bias = false;    // a bias per column
    bool c_apart = false; // beta · c from another buffer than out (a residual), out poisoned
};

const char* scaling_name(cuda::MicroscaledB b) {
    switch (b) {
    case cuda::MicroscaledB::per_tensor:
        return "per-tensor";
    case cuda::MicroscaledB::blocks_128x128:
        return "128x128";
    default:
        return "groups";
    }
}

std::string describe(const Case& c) {
    return std::to_string(c.m) + "x" + std::to_string(c.n) + "x" + std::to_string(c.k) +
           " G=" + std::to_string(c.group) + " b:" + scaling_name(c.b_scaling) +
           (c.a_format == Format::e5m2 ? " a:e5m2" : " a:e4m3") +
           (c.pow2_scales ? " pow2" : " fp32-scales") + (c.out_fp32 ? " out:fp32" : " out:bf16") +
           " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) +
           (c.bias ? " bias" : "") + (c.c_apart ? " c-apart" : "");
}

// Quantizes `values` (rows × k) to `format` codes with one scale per group of group_rows rows
// by group_cols columns: scale_inv at scales[(col / group_cols) * stride + row / group_rows].
void quantize(const std::vector<float>& values, int64_t rows, int64_t k, int64_t group_rows,
              int64_t group_cols, bool pow2, Format format, std::vector<uint8_t>& codes,
              std::vector<float>& scales, int64_t stride) {
    codes.resize(values.size());
    const float max = format == Format::e5m2 ? 57344.0f : 448.0f;
    for (int64_t c0 = 0; c0 < k; c0 += group_cols)
        for (int64_t r0 = 0; r0 < rows; r0 += group_rows) {
            const int64_t r1 = std::min(rows, r0 + group_rows), c1 = std::min(k, c0 + group_cols);
            float amax = 0;
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c)
                    amax = std::max(amax, std::fabs(values[size_t(r * k + c)]));
            float scale_inv = amax > 0 ? amax / max : 1.0f;
            if (pow2) scale_inv = std::exp2(std::ceil(std::log2(scale_inv)));
            scales[size_t(c0 / group_cols * stride + r0 / group_rows)] = scale_inv;
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c)
                    codes[size_t(r * k + c)] = uint8_t(
                        encode(values[size_t(r * k + c)] / scale_inv, format, Overflow::saturate));
        }
}

void run_case(const Case& c, Rng& rng) {
    SCOPED_TRACE(describe(c));
    using B = cuda::MicroscaledB;
    const int64_t m = c.m, n = c.n, k = c.k, G = c.group;
    const int64_t kg = (k + G - 1) / G, kb = (k + 127) / 128, nb = (n + 127) / 128;
    const int64_t sa_stride = cuda::microscaled_scale_stride(m);
    // b's scale grid: rows of scales (one per group along K) of sb_stride entries.
    int64_t sb_rows = 1, sb_stride = 1, b_group_rows = n, b_group_cols = std::max<int64_t>(k, 1);
    if (c.b_scaling == B::blocks_128x128) {
        sb_rows = kb, sb_stride = nb, b_group_rows = 128, b_group_cols = 128;
    } else if (c.b_scaling == B::groups) {
        sb_rows = kg, sb_stride = cuda::microscaled_scale_stride(n), b_group_rows = 1,
        b_group_cols = G;
    }
    // The scale grids' padding entries hold NaN: the kernel must not let them reach the output.
    std::vector<uint8_t> a, b;
    std::vector<float> sa(size_t(kg * sa_stride), std::nanf("")),
        sb(size_t(sb_rows * sb_stride), std::nanf(""));
    quantize(testing::random_matrix(rng, m, k, 4.0), m, k, 1, G, c.pow2_scales, c.a_format, a, sa,
             sa_stride);
    quantize(testing::random_matrix(rng, n, k, 4.0), n, k, b_group_rows, b_group_cols,
             c.pow2_scales, Format::e4m3, b, sb, sb_stride);
    std::vector<float> prior(size_t(m * n)), bias(size_t(n), 0.0f);
    for (auto& v : prior) v = float(rng.normal());
    if (c.bias)
        for (auto& v : bias) v = float(rng.normal());

    // float64 reference on the dequantized operands.
    std::vector<double> a_deq(a.size()), b_deq(b.size()), ref(size_t(m * n));
    for (int64_t r = 0; r < m; ++r)
        for (int64_t i = 0; i < k; ++i)
            a_deq[size_t(r * k + i)] = double(decode(a[size_t(r * k + i)], c.a_format)) *
                                       sa[size_t((i / G) * sa_stride + r)];
    for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < k; ++i)
            b_deq[size_t(r * k + i)] =
                double(decode(b[size_t(r * k + i)], Format::e4m3)) *
                sb[size_t((i / b_group_cols) * sb_stride + r / b_group_rows)];
    for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t i = 0; i < k; ++i)
                s += a_deq[size_t(r * k + i)] * b_deq[size_t(j * k + i)];
            ref[size_t(r * n + j)] = double(c.alpha) * s + double(bias[size_t(j)]) +
                                     double(c.beta) * prior[size_t(r * n + j)];
        }

    // A per-tensor b's scale goes in through alpha, as MOSS's weight scale does.
    const float alpha = c.b_scaling == B::per_tensor ? c.alpha * sb[0] : c.alpha;
    cuda::DeviceMemory memory(nullptr);
    Buffer<uint8_t> da(memory), db(memory), dout(memory);
    Buffer<float> dsa(memory), dsb(memory), dalpha(memory), dbias(memory), dc(memory);
    dbias.upload(bias.data(), int64_t(bias.size()));
    dc.upload(prior.data(), int64_t(prior.size()));
    da.upload(a.data(), int64_t(a.size()));
    db.upload(b.data(), int64_t(b.size()));
    dsa.upload(sa.data(), int64_t(sa.size()));
    dsb.upload(sb.data(), int64_t(sb.size()));
    dalpha.upload(&alpha, 1);
    const size_t out_bytes = size_t(m * n) * (c.out_fp32 ? 4 : 2);
    dout.resize(int64_t(out_bytes));
    if (c.beta != 0.0f && !c.c_apart)
        dout.memory().from_host(dout.data(), prior.data(), out_bytes);
    else
        OCTET_CUDA_CHECK(cudaMemset(dout.data(), 0xFF, out_bytes)); // NaN poison

    cuda::MicroscaledGemm gemm(memory);
    gemm.run({da.data(), db.data(), dsa.data(), c.b_scaling == B::per_tensor ? nullptr : dsb.data(),
              c.b_scaling, c.group, c.a_format, alpha == 1.0f ? nullptr : dalpha.data(),
              dout.data(), c.out_fp32, c.beta, m, n, k, c.bias ? dbias.data() : nullptr,
              c.c_apart ? dc.data() : nullptr},
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
    const Format e4 = Format::e4m3, e5 = Format::e5m2;
    std::vector<Case> cases = {
        {256, 384, 512, 128, B::blocks_128x128, e4, true, false, 1.0f, 0.0f},
        {256, 384, 512, 128, B::groups, e4, true, true, 0.375f, 0.0f},
        {256, 384, 512, 32, B::per_tensor, e4, true, true, 1.0f, 0.0f},
        {256, 384, 512, 32, B::groups, e4, true, false, 1.0f, 0.0f},
        {1000, 776, 1040, 128, B::blocks_128x128, e4, false, false, 1.0f, 0.0f},
        {1000, 776, 1040, 32, B::blocks_128x128, e5, true, true, 1.0f, 0.0f},
        {129, 130, 100, 128, B::blocks_128x128, e4, true, true, 2.0f, 1.0f},
        {7, 9, 33, 128, B::groups, e4, false, false, 1.0f, 0.0f},
        {7, 9, 33, 32, B::groups, e5, false, true, 1.0f, 1.0f},
        {333, 257, 1000, 128, B::groups, e5, true, true, 1.0f, 1.0f},
        {130, 129, 1, 128, B::blocks_128x128, e4, false, true, 0.5f, 0.0f},
        {300, 200, 2048, 128, B::per_tensor, e5, false, true, 1.0f, 0.0f},
        // FP32 output with beta 1 on rows of whole 16-byte vectors, and beta neither 0 nor 1.
        {256, 384, 512, 128, B::groups, e4, true, true, 1.0f, 1.0f},
        {300, 200, 2048, 32, B::blocks_128x128, e4, false, true, 1.0f, 0.5f},
        // Few tiles and a long K: K split four ways (FP32, beta 1, as the wgrad) and three
        // uneven ways (25 stages of 128, BF16).
        {200, 300, 4096, 128, B::groups, e4, true, true, 1.0f, 1.0f},
        {129, 130, 3100, 32, B::blocks_128x128, e5, false, false, 0.5f, 0.0f},
        // A linear layer's epilogues: bias with BF16 output; bias and a residual apart from out,
        // on whole vectors, odd rows, and split K; k = 0 (bias and residual alone).
        {256, 384, 512, 128, B::blocks_128x128, e4, false, false, 1.0f, 0.0f, true},
        {333, 257, 1000, 32, B::per_tensor, e4, true, false, 0.5f, 0.0f, true},
        {256, 384, 512, 128, B::blocks_128x128, e4, false, true, 1.0f, 1.0f, true, true},
        {129, 130, 100, 32, B::groups, e4, true, true, 2.0f, 1.0f, true, true},
        {200, 300, 4096, 128, B::groups, e4, true, true, 1.0f, 1.0f, true, true},
        {129, 130, 3100, 128, B::per_tensor, e5, false, false, 1.0f, 0.0f, true},
        {17, 24, 0, 128, B::blocks_128x128, e4, true, true, 1.0f, 1.0f, true, true},
    };
    // Fresh random shapes every run, odd ones likely.
    const B scalings[] = {B::per_tensor, B::blocks_128x128, B::groups};
    for (int i = 0; i < 6; ++i)
        cases.push_back({1 + int64_t(rng.uniform() * 600), 1 + int64_t(rng.uniform() * 600),
                         1 + int64_t(rng.uniform() * 900), i % 2 ? 32 : 128, scalings[i % 3],
                         i % 4 == 1 ? e5 : e4, i < 3, i % 3 == 0, i == 1 ? 0.25f : 1.0f,
                         i == 3 ? 1.0f : 0.0f});
    for (const Case& c : cases) run_case(c, rng);
}

TEST(MicroscaledGemm, RefusesBetaWithBf16OutputAndOtherGroups) {
    OCTET_SKIP_WITHOUT_GPU();
    cuda::DeviceMemory memory(nullptr);
    cuda::MicroscaledGemm gemm(memory);
    EXPECT_THROW(gemm.run({nullptr, nullptr, nullptr, nullptr, cuda::MicroscaledB::blocks_128x128,
                           128, Format::e4m3, nullptr, nullptr, false, 1.0f, 16, 16, 16},
                          nullptr),
                 Error);
    EXPECT_THROW(gemm.run({nullptr, nullptr, nullptr, nullptr, cuda::MicroscaledB::per_tensor, 64,
                           Format::e4m3, nullptr, nullptr, true, 0.0f, 16, 16, 16},
                          nullptr),
                 Error);
}

} // namespace
} // namespace octet
