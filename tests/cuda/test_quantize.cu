// GPU quantization kernels (cuda/quantize.cu) against the CPU recipes, bit for bit: codes and
// scales, on awkward shapes, with NaN and Inf among the inputs. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "cuda/check.h"
#include "cuda/quantize.h"
#include "recipe/recipe.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/gpu.h"

namespace octet {
namespace {

// Random BF16 values (rows spread over 2^±8), with a NaN, an Inf and a zero row, as floats.
std::vector<float> bf16_values(Rng& rng, int64_t rows, int64_t cols) {
    std::vector<float> x = testing::awkward_matrix(rng, rows, cols);
    for (float& v : x) v = round_to_format(v, Format::bf16, Overflow::ieee);
    return x;
}

template <typename T>
struct Device {
    explicit Device(size_t n) { OCTET_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T) + 16)); }
    ~Device() { cudaFree(p); }
    std::vector<T> get(size_t n) const {
        std::vector<T> h(n);
        OCTET_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
        return h;
    }
    T* p = nullptr;
};

const int64_t shapes[][2] = {{1, 128}, {217, 256}, {5, 160}, {129, 33}, {64, 1296}};

TEST(CudaQuantize, GroupScalingMatchesTheCpuRecipesBitForBit) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    for (auto [rows, cols] : shapes) {
        const std::vector<float> x = bf16_values(rng, rows, cols);
        std::vector<__nv_bfloat16> xb(x.size());
        for (size_t i = 0; i < x.size(); ++i) xb[i] = __float2bfloat16(x[i]);
        Device<__nv_bfloat16> dx(x.size());
        OCTET_CUDA_CHECK(cudaMemcpy(dx.p, xb.data(), xb.size() * 2, cudaMemcpyHostToDevice));
        for (auto [spec, group, pow2, fmt] : {std::tuple{"blockwise", 128, false, Format::e4m3},
                                              {"blockwise:pow2=true", 128, true, Format::e4m3},
                                              {"blockwise:group=32", 32, false, Format::e4m3}}) {
            SCOPED_TRACE(std::string(spec) + " " + std::to_string(rows) + "x" +
                         std::to_string(cols));
            const QuantizedTensor ref = make_recipe(spec)
                                            ->make_quantizer(TensorRole::activation)
                                            ->quantize({x.data(), rows, cols});
            Device<uint8_t> codes(x.size());
            Device<float> scales(ref.scales[0].scale_inv.size());
            OCTET_CUDA_CHECK(cudaMemset(codes.p, 0xAA, x.size()));
            cuda::quantize_groups({dx.p, rows, cols, group, fmt, pow2, codes.p, scales.p}, nullptr);
            OCTET_CUDA_CHECK(cudaDeviceSynchronize());
            EXPECT_EQ(codes.get(x.size()), ref.codes);
            EXPECT_EQ(scales.get(ref.scales[0].scale_inv.size()), ref.scales[0].scale_inv);
        }
        for (int64_t group : {32, 128}) {
            SCOPED_TRACE("moss G=" + std::to_string(group) + " " + std::to_string(rows) + "x" +
                         std::to_string(cols));
            const QuantizedTensor ref = make_recipe("moss:group=" + std::to_string(group))
                                            ->make_quantizer(TensorRole::activation)
                                            ->quantize({x.data(), rows, cols});
            const size_t n_groups = ref.scales[0].scale_inv.size();
            Device<uint8_t> codes(x.size());
            Device<float> local(n_groups), global(1), work(n_groups);
            cuda::quantize_two_level({dx.p, rows, cols, group, codes.p, local.p, global.p, work.p},
                                     nullptr);
            OCTET_CUDA_CHECK(cudaDeviceSynchronize());
            EXPECT_EQ(codes.get(x.size()), ref.codes);
            EXPECT_EQ(local.get(n_groups), ref.scales[0].scale_inv);
            EXPECT_EQ(global.get(1), ref.scales[1].scale_inv);
        }
    }
}

} // namespace
} // namespace octet
