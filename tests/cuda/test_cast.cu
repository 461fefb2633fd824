// GPU tests of the format casts (cuda/cast.cu): the device codec against the CPU oracle on random
// inputs, and against the hardware's own conversions (cvt.rn.satfinite.{e4m3,e5m2}x2.f32,
// cvt.rn.f16.f32, cvt.rn.bf16.f32) over all 2^32 float bit patterns; the BF16 casts of GEMM
// operands (cuda/kernels.h) against the codec, four at a time and one by one; the quantization
// kernels' four-at-a-time scaled cast against the CPU's. Skips without a GPU.
#include <gtest/gtest.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "common/rng.h"
#include "cuda/cast.h"
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/quantize_quad.cuh"
#include "numerics/quantized_tensor.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/gpu.h"

namespace octet {
namespace {

template <typename T>
struct DeviceBuffer {
    explicit DeviceBuffer(size_t n) : size(n) {
        OCTET_CUDA_CHECK(cudaMalloc(&ptr, n * sizeof(T) + 1));
    }
    ~DeviceBuffer() { cudaFree(ptr); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    T* ptr = nullptr;
    size_t size;
};

const Format all_formats[] = {Format::e4m3, Format::e5m2, Format::fp16, Format::bf16};

TEST(CudaCast, DeviceCodecMatchesTheCpuOracleBitForBit) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    const size_t n = 1 << 20;
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
        // Random bit patterns cover NaN, Inf, subnormals and everything else.
        x[i] = i % 2 ? bits_to_float(uint32_t(rng.next_u64()))
                     : float(std::ldexp(rng.normal(), int(rng.next_u64() % 60) - 30));
    }
    DeviceBuffer<float> d_x(n);
    DeviceBuffer<uint16_t> d_codes(n + 64); // 64 sentinels after the output
    DeviceBuffer<float> d_back(n);
    OCTET_CUDA_CHECK(cudaMemcpy(d_x.ptr, x.data(), n * 4, cudaMemcpyHostToDevice));
    for (Format f : all_formats) {
        for (Overflow mode : {Overflow::saturate, Overflow::ieee}) {
            OCTET_CUDA_CHECK(cudaMemset(d_codes.ptr, 0xA5, (n + 64) * 2));
            cuda::cast_to_format(d_x.ptr, d_codes.ptr, int64_t(n), f, mode, nullptr);
            cuda::cast_from_format(d_codes.ptr, d_back.ptr, int64_t(n), f, nullptr);
            std::vector<uint16_t> codes(n + 64);
            std::vector<float> back(n);
            OCTET_CUDA_CHECK(
                cudaMemcpy(codes.data(), d_codes.ptr, (n + 64) * 2, cudaMemcpyDeviceToHost));
            OCTET_CUDA_CHECK(cudaMemcpy(back.data(), d_back.ptr, n * 4, cudaMemcpyDeviceToHost));
            for (size_t i = 0; i < n; ++i) {
                ASSERT_EQ(codes[i], encode(x[i], f, mode)) << "format " << int(f) << " x=" << x[i];
                const float expected = decode(codes[i], f);
                ASSERT_TRUE(back[i] == expected || (std::isnan(back[i]) && std::isnan(expected)));
            }
            for (size_t i = n; i < n + 64; ++i) ASSERT_EQ(codes[i], 0xA5A5) << "write past the end";
        }
    }
}

bool same_value(float a, float b) {
    return a == b || (std::isnan(a) && std::isnan(b));
}

// to_bf16 and from_bf16 on random bit patterns: aligned buffers with a ragged
// tail (whole quads, then the last n % 4), then buffers one element off alignment (one by one).
TEST(CudaCast, Bf16OperandCastsMatchTheCodec) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    const size_t n = 4099;
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = bits_to_float(uint32_t(rng.next_u64()));
    DeviceBuffer<float> d_x(n + 1), d_out(n + 1);
    DeviceBuffer<__nv_bfloat16> d_codes(n + 1);
    for (size_t offset : {0, 1}) {
        SCOPED_TRACE("offset " + std::to_string(offset));
        float* in = d_x.ptr + offset;
        __nv_bfloat16* codes = d_codes.ptr + offset;
        float* out = d_out.ptr + offset;
        OCTET_CUDA_CHECK(cudaMemcpy(in, x.data(), n * 4, cudaMemcpyHostToDevice));
        OCTET_CUDA_CHECK(cudaMemset(out, 0xFF, n * 4)); // NaN where nothing is written
        cuda::to_bf16(codes, in, int64_t(n), nullptr);
        std::vector<uint16_t> got_codes(n);
        std::vector<float> got_back(n);
        OCTET_CUDA_CHECK(cudaMemcpy(got_codes.data(), codes, n * 2, cudaMemcpyDeviceToHost));
        cuda::from_bf16(out, codes, int64_t(n), nullptr);
        OCTET_CUDA_CHECK(cudaMemcpy(got_back.data(), out, n * 4, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < n; ++i) {
            const uint16_t code = uint16_t(encode(x[i], Format::bf16, Overflow::ieee));
            const float value = decode(code, Format::bf16);
            ASSERT_TRUE(same_value(decode(got_codes[i], Format::bf16), value)) << "x=" << x[i];
            if (!std::isnan(value)) ASSERT_EQ(got_codes[i], code) << "x=" << x[i];
            ASSERT_TRUE(same_value(got_back[i], value)) << "x=" << x[i];
        }
    }
}

// A BF16 linear layer's bias gradient, the column sums of its BF16 dy added to a random prior:
// within 1e-6 of float64 sums of the decoded codes. Shapes: many rows per slice, 4-column groups
// not a multiple of the block, an odd width (one column per thread), and rows that start off
// 8-byte boundaries (one column per thread too).
TEST(CudaCast, BiasGradientFromBf16Dy) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    for (const auto& [n, m, offset] : {std::tuple<size_t, size_t, size_t>{5000, 1024, 0},
                                       {777, 772, 0},
                                       {130, 771, 0},
                                       {130, 772, 1}}) {
        SCOPED_TRACE(std::to_string(n) + " x " + std::to_string(m) + " + " +
                     std::to_string(offset));
        std::vector<uint16_t> codes(n * m);
        std::vector<float> prior(m);
        for (uint16_t& c : codes)
            c = uint16_t(encode(float(rng.normal()), Format::bf16, Overflow::ieee));
        for (float& v : prior) v = float(rng.normal());
        DeviceBuffer<__nv_bfloat16> d_dy(n * m + offset);
        DeviceBuffer<float> d_sums(m),
            d_scratch(size_t(cuda::bias_backward_scratch(int64_t(n), int64_t(m))));
        OCTET_CUDA_CHECK(
            cudaMemcpy(d_dy.ptr + offset, codes.data(), n * m * 2, cudaMemcpyHostToDevice));
        OCTET_CUDA_CHECK(cudaMemcpy(d_sums.ptr, prior.data(), m * 4, cudaMemcpyHostToDevice));
        cuda::bias_backward(d_sums.ptr, d_dy.ptr + offset, int64_t(n), int64_t(m), d_scratch.ptr,
                            nullptr);
        std::vector<float> sums(m);
        OCTET_CUDA_CHECK(cudaMemcpy(sums.data(), d_sums.ptr, m * 4, cudaMemcpyDeviceToHost));
        for (size_t j = 0; j < m; ++j) {
            double ref = 0, magnitude = 0;
            for (size_t i = 0; i < n; ++i) {
                const double v = decode(codes[i * m + j], Format::bf16);
                ref += v;
                magnitude += std::fabs(v);
            }
            ASSERT_FALSE(std::isnan(sums[j])) << "column " << j;
            ASSERT_NEAR(sums[j] - double(prior[j]), ref, 1e-6 * magnitude + 1e-6) << "column " << j;
        }
    }
}

struct SweepResult {
    unsigned long long mismatches;
    unsigned long long nan_payload_only; // both NaN, different NaN codes
    unsigned first_bits;
};

__device__ unsigned hardware_code(float x, Format f) {
    unsigned short r;
    switch (f) {
    case Format::e4m3:
        asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %1;" : "=h"(r) : "f"(x));
        return r & 0xFF;
    case Format::e5m2:
        asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %1;" : "=h"(r) : "f"(x));
        return r & 0xFF;
    case Format::fp16:
        return __half_as_ushort(__float2half_rn(x));
    default:
        return __bfloat16_as_ushort(__float2bfloat16_rn(x));
    }
}

// What the device computes: the raw hardware conversion, or encode_saturate (formats.h), which
// the kernels use.
enum class DeviceCodec { hardware, encode_saturate };

__global__ void sweep_kernel(Format f, Overflow mode, DeviceCodec codec, SweepResult* result) {
    const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
    for (uint64_t u = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; u < (1ull << 32);
         u += stride) {
        const float x = __uint_as_float(unsigned(u));
        const unsigned ours = encode(x, f, mode);
        const unsigned hw =
            codec == DeviceCodec::hardware ? hardware_code(x, f) : encode_saturate(x, f);
        if (ours == hw) continue;
        if (isnan(decode(ours, f)) && isnan(decode(hw, f))) {
            atomicAdd(&result->nan_payload_only, 1ull);
        } else if (atomicAdd(&result->mismatches, 1ull) == 0) {
            result->first_bits = unsigned(u);
        }
    }
}

SweepResult sweep(Format f, Overflow mode, DeviceCodec codec) {
    DeviceBuffer<SweepResult> d_result(1);
    OCTET_CUDA_CHECK(cudaMemset(d_result.ptr, 0, sizeof(SweepResult)));
    sweep_kernel<<<2048, 256>>>(f, mode, codec, d_result.ptr);
    OCTET_CUDA_CHECK(cudaGetLastError());
    SweepResult r;
    OCTET_CUDA_CHECK(cudaMemcpy(&r, d_result.ptr, sizeof r, cudaMemcpyDeviceToHost));
    std::printf("%s: %llu mismatches over 2^32 floats, %llu NaN-code-only differences\n",
                format_name(f), r.mismatches, r.nan_payload_only);
    return r;
}

// The hardware converts FP8 with saturation only (sm_90 has no non-saturating cvt to FP8), and
// FP16/BF16 the IEEE way; those are the modes compared.
TEST(CudaCast, CodecMatchesHopperHardwareConversionsOnAllFloats) {
    OCTET_SKIP_WITHOUT_GPU();
    const std::pair<Format, Overflow> cases[] = {{Format::e4m3, Overflow::saturate},
                                                 {Format::e5m2, Overflow::saturate},
                                                 {Format::fp16, Overflow::ieee},
                                                 {Format::bf16, Overflow::ieee}};
    for (auto [f, mode] : cases) {
        const SweepResult r = sweep(f, mode, DeviceCodec::hardware);
        EXPECT_EQ(r.mismatches, 0ull) << "first at float bits 0x" << std::hex << r.first_bits;
    }
}

// encode_saturate on the device (the hardware, with Inf saturated for FP16 and BF16) against the
// codec's saturating mode, in every format.
TEST(CudaCast, DeviceEncodeSaturateMatchesTheCodecOnAllFloats) {
    OCTET_SKIP_WITHOUT_GPU();
    for (Format f : {Format::e4m3, Format::e5m2, Format::fp16, Format::bf16}) {
        const SweepResult r = sweep(f, Overflow::saturate, DeviceCodec::encode_saturate);
        EXPECT_EQ(r.mismatches, 0ull) << "first at float bits 0x" << std::hex << r.first_bits;
    }
}

__global__ void cast_quads_kernel(const float4* x, const float* scale, int64_t quads, Format f,
                                  uint32_t* codes) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < quads) {
        const float4 v = x[i];
        codes[i] = cuda::cast_scaled_packed(v.x, v.y, v.z, v.w, scale[i], f);
    }
}

// The quantization kernels' four-at-a-time cast (two paired hardware conversions where all four
// values are finite) against cast_scaled on the CPU, value by value: quads of finite values, some
// scaled past the format's maximum (saturation), and quads of random bit patterns (NaN, ±Inf).
TEST(CudaCast, FourAtATimeCastsMatchOneByOne) {
    OCTET_SKIP_WITHOUT_GPU();
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    Rng rng(seed);
    const int64_t quads = 1 << 18;
    std::vector<float> x(static_cast<size_t>(4 * quads)), scale(static_cast<size_t>(quads));
    for (int64_t q = 0; q < quads; ++q) {
        const bool bit_patterns = q % 8 == 0;
        for (int j = 0; j < 4; ++j)
            x[size_t(4 * q + j)] =
                bit_patterns ? bits_to_float(uint32_t(rng.next_u64()))
                             : float(std::ldexp(rng.normal(), int(rng.next_u64() % 40) - 20));
        scale[size_t(q)] = float(std::ldexp(1.0 + rng.uniform(), int(rng.next_u64() % 40) - 20));
    }
    DeviceBuffer<float> d_x(x.size()), d_scale(scale.size());
    DeviceBuffer<uint32_t> d_codes(static_cast<size_t>(quads));
    OCTET_CUDA_CHECK(cudaMemcpy(d_x.ptr, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    OCTET_CUDA_CHECK(
        cudaMemcpy(d_scale.ptr, scale.data(), scale.size() * 4, cudaMemcpyHostToDevice));
    for (Format f : {Format::e4m3, Format::e5m2}) {
        SCOPED_TRACE(format_name(f));
        OCTET_CUDA_CHECK(cudaMemset(d_codes.ptr, 0xA5, size_t(quads) * 4));
        cast_quads_kernel<<<unsigned((quads + 255) / 256), 256>>>(
            reinterpret_cast<const float4*>(d_x.ptr), d_scale.ptr, quads, f, d_codes.ptr);
        OCTET_CUDA_CHECK(cudaGetLastError());
        std::vector<uint32_t> codes(static_cast<size_t>(quads));
        OCTET_CUDA_CHECK(
            cudaMemcpy(codes.data(), d_codes.ptr, codes.size() * 4, cudaMemcpyDeviceToHost));
        int64_t differ = 0, first = -1;
        for (int64_t q = 0; q < quads; ++q)
            for (int j = 0; j < 4; ++j) {
                const uint8_t want = cast_scaled(x[size_t(4 * q + j)], scale[size_t(q)], f);
                if (uint8_t(codes[size_t(q)] >> (8 * j)) != want && differ++ == 0)
                    first = 4 * q + j;
            }
        EXPECT_EQ(differ, 0) << "first at value " << first;
    }
}

} // namespace
} // namespace octet
