// The GPU transposes of FP8 tensors against the CPU, bit for bit:
// - the scaling-aware transpose (cuda/transpose.cu) against the oracle (recipe/transpose.cpp):
//   codes and scales, partial tiles, subnormal rounding, an all-zero group, NaN and Inf;
// - the exact transpose of codes (cuda/fp8_transpose.h) against a host transpose of random
//   bytes: word-aligned shapes (full and partial tiles) and the byte-wise path for the others.
// Skips without a GPU.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "cuda/check.h"
#include "cuda/fp8_transpose.h"
#include "cuda/transpose.h"
#include "recipe/recipe.h"
#include "recipe/transpose.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/gpu.h"

namespace octet {
namespace {

TEST(CudaTranspose, ScalingAwareMatchesTheCpuBitForBit) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    const int64_t shapes[][2] = {{256, 384}, {130, 200}, {1, 128},
                                 {128, 1},   {300, 129}, {512, 1024}};
    for (auto [rows, cols] : shapes) {
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
        // Rows spread over 2^±10: tiles mix scales and many values shift into subnormals.
        std::vector<float> x = testing::random_matrix(rng, rows, cols, 10.0);
        if (x.size() > 200) {
            x[5] = std::numeric_limits<float>::quiet_NaN();
            x[150] = std::numeric_limits<float>::infinity();
        }
        if (rows > 3)
            for (int64_t c = 0; c < cols; ++c) x[size_t(2 * cols + c)] = 0.0f; // an all-zero row
        const QuantizedTensor q = make_recipe("blockwise:pow2=true")
                                      ->make_quantizer(TensorRole::activation)
                                      ->quantize({x.data(), rows, cols});
        const QuantizedTensor ref = transpose_scaling_aware(q);

        uint8_t *codes = nullptr, *out = nullptr;
        float *scales = nullptr, *out_scales = nullptr;
        OCTET_CUDA_CHECK(cudaMalloc(&codes, q.codes.size()));
        OCTET_CUDA_CHECK(cudaMalloc(&out, q.codes.size()));
        OCTET_CUDA_CHECK(cudaMalloc(&scales, q.scales[0].scale_inv.size() * 4));
        OCTET_CUDA_CHECK(cudaMalloc(&out_scales, ref.scales[0].scale_inv.size() * 4));
        OCTET_CUDA_CHECK(cudaMemcpy(codes, q.codes.data(), q.codes.size(), cudaMemcpyHostToDevice));
        OCTET_CUDA_CHECK(cudaMemcpy(scales, q.scales[0].scale_inv.data(),
                                    q.scales[0].scale_inv.size() * 4, cudaMemcpyHostToDevice));
        OCTET_CUDA_CHECK(cudaMemset(out, 0xAA, q.codes.size()));
        cuda::transpose_scaling_aware({codes, scales, rows, cols, q.format, out, out_scales},
                                      nullptr);
        OCTET_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<uint8_t> got(q.codes.size());
        std::vector<float> got_scales(ref.scales[0].scale_inv.size());
        OCTET_CUDA_CHECK(cudaMemcpy(got.data(), out, got.size(), cudaMemcpyDeviceToHost));
        OCTET_CUDA_CHECK(cudaMemcpy(got_scales.data(), out_scales, got_scales.size() * 4,
                                    cudaMemcpyDeviceToHost));
        for (void* p : {(void*)codes, (void*)out, (void*)scales, (void*)out_scales}) cudaFree(p);
        EXPECT_EQ(got, ref.codes);
        EXPECT_EQ(got_scales, ref.scales[0].scale_inv);
    }
}

TEST(CudaTranspose, CodesMatchAHostTransposeBitForBit) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    // Word-aligned: one partial tile, whole tiles, tiles cut in both directions. Then shapes
    // whose rows or columns are not multiples of 4.
    const int64_t shapes[][2] = {{4, 8},     {256, 384}, {260, 388}, {1024, 4096},
                                 {130, 200}, {1, 33},    {96, 6},    {33, 1}};
    for (auto [rows, cols] : shapes) {
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
        const size_t n = size_t(rows * cols);
        std::vector<uint8_t> in(n), want(n);
        for (uint8_t& b : in) b = uint8_t(rng.next_u64());
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c)
                want[size_t(c * rows + r)] = in[size_t(r * cols + c)];
        uint8_t *d_in = nullptr, *d_out = nullptr;
        OCTET_CUDA_CHECK(cudaMalloc(&d_in, n));
        OCTET_CUDA_CHECK(cudaMalloc(&d_out, n));
        OCTET_CUDA_CHECK(cudaMemcpy(d_in, in.data(), n, cudaMemcpyHostToDevice));
        OCTET_CUDA_CHECK(cudaMemset(d_out, 0xAA, n)); // poisoned: every byte must be written
        cuda::transpose_codes(d_in, rows, cols, d_out, nullptr);
        OCTET_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<uint8_t> got(n);
        OCTET_CUDA_CHECK(cudaMemcpy(got.data(), d_out, n, cudaMemcpyDeviceToHost));
        cudaFree(d_in);
        cudaFree(d_out);
        EXPECT_EQ(got, want);
    }
}

} // namespace
} // namespace octet
