// cuBLASLt GEMMs (cuda/gemm.cu) against the CPU oracle: the same FP8 operands, quantized by the
// CPU recipes, multiplied by CpuOps' promoted GEMM (cpu/linear.cpp). Output poisoned with NaN
// before each run; DeepGEMM's calc_diff = 1 − 2Σxy/Σ(x²+y²) < 1e-4 and relative Frobenius
// error < 5e-3 (the BF16 output rounds at 2^-9). Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cuda/check.h"
#include "cuda/gemm.h"
#include "ops/linear_precision.h"
#include "recipe/recipe.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/gemm_agreement.h"
#include "tests/harness/gpu.h"

namespace octet {
namespace {

template <typename T>
T* upload(const std::vector<T>& host) {
    T* d = nullptr;
    OCTET_CUDA_CHECK(cudaMalloc(&d, host.size() * sizeof(T) + 16));
    OCTET_CUDA_CHECK(cudaMemcpy(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

testing::GemmAgreement compare(const std::vector<float>& ref,
                               const std::vector<__nv_bfloat16>& got) {
    return testing::gemm_agreement(
        ref.size(), [&](size_t i) { return double(ref[i]); },
        [&](size_t i) { return double(__bfloat162float(got[i])); });
}

// Runs the GPU GEMM on the operands the CPU layer quantized and compares with the CPU output.
testing::GemmAgreement run_case(const std::string& spec, cuda::GemmScaling scaling, int64_t m,
                                int64_t n, int64_t k, Rng& rng) {
    const std::vector<float> x = testing::random_matrix(rng, m, k, 3.0),
                             w = testing::random_matrix(rng, n, k, 1.0);
    CpuOps<float> ops;
    auto cpu_precision = LinearPrecision::fp8(*make_recipe(spec));
    std::vector<float> y(size_t(m * n));
    ops.linear_forward({y.data(), x.data(), w.data(), nullptr, m, k, n, cpu_precision.get()});
    auto precision = LinearPrecision::fp8(*make_recipe(spec));
    const auto op = precision->forward_fp8(x.data(), m, k, w.data(), n);
    const std::vector<float> sa = scaling == cuda::GemmScaling::blockwise
                                      ? cuda::blockwise_scale_layout(op.a)
                                      : op.a.scales[0].scale_inv;
    const std::vector<float> sb = scaling == cuda::GemmScaling::blockwise
                                      ? cuda::blockwise_scale_layout(op.b)
                                      : op.b.scales[0].scale_inv;
    uint8_t* da = upload(op.a.codes);
    uint8_t* db = upload(op.b.codes);
    float* dsa = upload(sa);
    float* dsb = upload(sb);
    __nv_bfloat16* out = nullptr;
    OCTET_CUDA_CHECK(cudaMalloc(&out, size_t(m * n) * 2));
    OCTET_CUDA_CHECK(cudaMemset(out, 0xFF, size_t(m * n) * 2)); // NaN poison
    cuda::CublasLtGemm gemm;
    gemm.run({da, db, op.a.format, op.b.format, dsa, dsb, scaling, out, m, n, k, false}, nullptr);
    OCTET_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<__nv_bfloat16> got(size_t(m * n));
    OCTET_CUDA_CHECK(cudaMemcpy(got.data(), out, got.size() * 2, cudaMemcpyDeviceToHost));
    for (void* p : {(void*)da, (void*)db, (void*)dsa, (void*)dsb, (void*)out}) cudaFree(p);
    return compare(y, got);
}

TEST(CudaGemm, Fp8GemmsMatchTheCpuOracle) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    // k = 384 and 640: a number of K-blocks that the padded weight-scale rows do not divide.
    const int64_t shapes[][3] = {
        {256, 384, 512}, {200, 256, 384}, {64, 128, 640}, {384, 256, 1024}};
    for (auto [m, n, k] : shapes) {
        for (auto [spec, scaling] : {std::pair{"blockwise", cuda::GemmScaling::blockwise},
                                     {"blockwise:pow2=true", cuda::GemmScaling::blockwise},
                                     {"te-current", cuda::GemmScaling::per_tensor}}) {
            const testing::GemmAgreement c = run_case(spec, scaling, m, n, k, rng);
            std::printf("%-20s m=%4lld n=%4lld k=%4lld: calc_diff %.2e, rel error %.2e\n", spec,
                        static_cast<long long>(m), static_cast<long long>(n),
                        static_cast<long long>(k), c.calc_diff, c.rel_error);
            EXPECT_FALSE(c.any_nan) << spec;
            EXPECT_LT(c.calc_diff, 1e-4) << spec << " " << m << "x" << n << "x" << k;
            EXPECT_LT(c.rel_error, 5e-3) << spec << " " << m << "x" << n << "x" << k;
        }
    }
}

TEST(CudaGemm, RefusesShapesItCannotRun) {
    OCTET_SKIP_WITHOUT_GPU();
    cuda::CublasLtGemm gemm;
    EXPECT_THROW(gemm.run({nullptr, nullptr, Format::e4m3, Format::e4m3, nullptr, nullptr,
                           cuda::GemmScaling::per_tensor, nullptr, 16, 16, 24, false},
                          nullptr),
                 Error); // k not a multiple of 16
    EXPECT_THROW(gemm.run({nullptr, nullptr, Format::bf16, Format::e4m3, nullptr, nullptr,
                           cuda::GemmScaling::per_tensor, nullptr, 16, 16, 32, false},
                          nullptr),
                 Error); // formats disagree with the scaling
    EXPECT_THROW(gemm.run({nullptr, nullptr, Format::e4m3, Format::e4m3, nullptr, nullptr,
                           cuda::GemmScaling::blockwise, nullptr, 1, 128, 256, false},
                          nullptr),
                 Error); // block-wise with m not a multiple of 4
}

} // namespace
} // namespace octet
