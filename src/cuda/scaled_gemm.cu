// FP8 GEMMs of device quantized operands (see scaled_gemm.h).
#include "cuda/scaled_gemm.h"

#include <algorithm>

#include "common/error.h"
#include "cuda/gemm_output.h"
#include "cuda/launch.cuh"

namespace octet::cuda {
namespace {

using Levels = DeviceQuantized::Levels;

enum class ScaleShape { per_tensor, per_row, along_k };

struct OperandScales {
    ScaleShape shape;
    bool tiles_128;    // constant on 128×128 tiles: b may take 128×128 block scales
    int k_group;       // the largest G of 128 and 32 on whose 1×G groups along K the scales are
                       // constant, or 0 if there is none: what the microscaled GEMM can take
    bool pow2_varying; // every level that varies is a power of two
};

OperandScales classify(const DeviceQuantized& q) {
    bool varies_k = false, varies_rows = false, tiles_128 = true, pow2 = true;
    int k_group = 128;
    for (int i = 0; i < q.level_count; ++i) {
        const DeviceScaleGrid& g = q.levels[size_t(i)];
        if (g.whole()) continue;
        pow2 = pow2 && g.pow2;
        if (g.grid_cols > 1) {
            varies_k = true;
            if (g.block_cols % 128 != 0) {
                tiles_128 = false;
                k_group = g.block_cols % 32 == 0 ? std::min(k_group, 32) : 0;
            }
        }
        if (g.grid_rows > 1) {
            varies_rows = true;
            if (g.block_rows % 128 != 0) tiles_128 = false;
        }
    }
    const ScaleShape shape = varies_k      ? ScaleShape::along_k
                             : varies_rows ? ScaleShape::per_row
                                           : ScaleShape::per_tensor;
    return {shape, tiles_128, k_group, pow2};
}

// The path a pair takes (scaled_gemm.h), and for the microscaled GEMM its group along K and b's
// scaling. b must hold E4M3 codes for it.
struct Route {
    ScaledGemmPath path;
    int group = 0;
    MicroscaledB b_scaling = MicroscaledB::per_tensor;
};

Route route(const DeviceQuantized& a, const DeviceQuantized& b) {
    const OperandScales sa = classify(a), sb = classify(b);
    const bool fp8_shape = a.cols % 16 == 0 && b.rows % 16 == 0 && a.cols > 0 &&
                           !(a.format == Format::e5m2 && b.format == Format::e5m2);
    const auto row_or_tensor = [](ScaleShape s) {
        return s == ScaleShape::per_tensor || s == ScaleShape::per_row;
    };
    if (fp8_shape && sa.shape == ScaleShape::per_tensor && sb.shape == ScaleShape::per_tensor)
        return {ScaledGemmPath::per_tensor};
    if (fp8_shape && row_or_tensor(sa.shape) && row_or_tensor(sb.shape))
        return {ScaledGemmPath::outer_vector};
    const bool microscaled = b.format == Format::e4m3 &&
                             (a.format == Format::e4m3 || a.format == Format::e5m2) &&
                             sa.k_group != 0 && sb.k_group != 0;
    if (microscaled)
        return {ScaledGemmPath::microscaled, std::min(sa.k_group, sb.k_group),
                sb.shape == ScaleShape::per_tensor ? MicroscaledB::per_tensor
                : sb.tiles_128                     ? MicroscaledB::blocks_128x128
                                                   : MicroscaledB::groups};
    return {sa.pow2_varying && sb.pow2_varying ? ScaledGemmPath::bf16 : ScaledGemmPath::fp32};
}

enum class ScaleLayout { scalar, per_row, k_groups, k_tiles };

// The product of `levels` in the layout a GEMM reads: one value; one per row (cuBLASLt,
// gemm.h); per group of `group` along K, rows fastest with microscaled_scale_stride(rows) per
// group; per 128×128 tile, tiles along the rows fastest (microscaled_gemm.h).
void gather_scales(const LevelViews& levels, int64_t rows, int64_t k, ScaleLayout layout,
                   int64_t group, Buffer<float>& out, cudaStream_t stream) {
    const int64_t stride = microscaled_scale_stride(rows), tiles = (rows + 127) / 128;
    int64_t count = 1;
    if (layout == ScaleLayout::per_row) count = rows;
    if (layout == ScaleLayout::k_groups) count = (k + group - 1) / group * stride;
    if (layout == ScaleLayout::k_tiles) count = (k + 127) / 128 * tiles;
    out.resize(count);
    float* p = out.data();
    for_each(count, stream, [=] __device__(int64_t i) {
        switch (layout) {
        case ScaleLayout::per_row:
            p[i] = levels.at(i, 0);
            break;
        case ScaleLayout::k_groups: // padding rows scale only outputs that are never stored
            p[i] = i % stride < rows ? levels.at(i % stride, (i / stride) * group) : 1.0f;
            break;
        case ScaleLayout::k_tiles:
            p[i] = levels.at((i % tiles) * 128, (i / tiles) * 128);
            break;
        default:
            p[i] = levels.at(0, 0);
        }
    });
}

// Four codes per thread, decoded through a table (the general codec would make this pass
// ALU-bound); rows of whole quads (cols % 4 == 0).
__global__ void dequantize_varying_bf16_kernel(const uint8_t* codes, LevelViews levels,
                                               Format format, int64_t n, int64_t cols,
                                               __nv_bfloat16* out) {
    __shared__ float decoded[256];
    decoded[threadIdx.x] = decode(threadIdx.x, format); // 256 threads
    __syncthreads();
    for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4; i < n;
         i += int64_t(gridDim.x) * blockDim.x * 4) {
        const int64_t r = i / cols, c = i % cols;
        const uint32_t w = *reinterpret_cast<const uint32_t*>(codes + i);
        __nv_bfloat162 pair[2];
        for (int k = 0; k < 2; ++k)
            pair[k] = __floats2bfloat162_rn(
                decoded[(w >> (16 * k)) & 0xFF] * levels.at(r, c + 2 * k),
                decoded[(w >> (16 * k + 8)) & 0xFF] * levels.at(r, c + 2 * k + 1));
        *reinterpret_cast<uint2*>(out + i) = *reinterpret_cast<const uint2*>(pair);
    }
}

// The codes times the levels that vary over the tensor, as BF16.
void dequantize_varying_bf16(const DeviceQuantized& q, Buffer<__nv_bfloat16>& out,
                             cudaStream_t stream) {
    out.resize(q.numel());
    const uint8_t* codes = q.codes.data();
    const LevelViews levels = q.views(Levels::varying);
    const int64_t cols = q.cols;
    const Format format = q.format;
    __nv_bfloat16* p = out.data();
    if (cols % 4 == 0) {
        if (q.numel() == 0) return;
        const unsigned blocks = std::min(blocks_for(q.numel() / 4, elementwise_threads), 65536u);
        dequantize_varying_bf16_kernel<<<blocks, elementwise_threads, 0, stream>>>(
            codes, levels, format, q.numel(), cols, p);
        OCTET_CUDA_LAUNCHED();
        return;
    }
    for_each(q.numel(), stream, [=] __device__(int64_t i) {
        p[i] = __float2bfloat16_rn(decode(codes[i], format) * levels.at(i / cols, i % cols));
    });
}

// out[0] = the product of a's and b's per-tensor levels.
void whole_scale_product(const LevelViews& a, const LevelViews& b, float* out,
                         cudaStream_t stream) {
    for_each(1, stream, [=] __device__(int64_t) { out[0] = a.at(0, 0) * b.at(0, 0); });
}

} // namespace

const char* scaled_gemm_path_name(ScaledGemmPath p) {
    switch (p) {
    case ScaledGemmPath::per_tensor:
        return "per-tensor";
    case ScaledGemmPath::outer_vector:
        return "outer-vector";
    case ScaledGemmPath::microscaled:
        return "microscaled";
    case ScaledGemmPath::bf16:
        return "emulated-bf16";
    default:
        return "emulated-fp32";
    }
}

ScaledGemmPath ScaledGemm::path(const DeviceQuantized& a, const DeviceQuantized& b) {
    return route(a, b).path;
}

ScaledGemmPath ScaledGemm::run(const DeviceQuantized& a, const DeviceQuantized& b,
                               const ScaledGemmOutput& o, bool fast_accum, cudaStream_t stream) {
    if (a.cols != b.cols)
        throw Error("scaled GEMM: operands disagree on K (" + std::to_string(a.cols) + " vs " +
                    std::to_string(b.cols) + ")");
    if (o.bf16 && o.add) throw Error("scaled GEMM: a BF16 output takes no FP32 tensor to add");
    const int64_t n = a.rows, m = b.rows, k = a.cols;
    const Route r = route(a, b);
    const ScaledGemmPath p = r.path;
    if (n == 0 || m == 0) return p;
    if (p == ScaledGemmPath::microscaled) {
        run_microscaled(a, b, r.group, r.b_scaling, o, stream);
        return p;
    }
    // The FP32 product, accumulated into out where out is what it adds.
    const bool accumulate = o.add && o.add == o.out;
    float* out = static_cast<float*>(o.out);
    if (o.bf16) {
        product_.resize(n * m);
        out = product_.data();
    }
    if (k == 0) {
        if (!accumulate) OCTET_CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(n * m) * 4, stream));
    } else if (p == ScaledGemmPath::bf16 || p == ScaledGemmPath::fp32) {
        emulate(a, b, out, accumulate, p == ScaledGemmPath::bf16, stream);
    } else {
        run_cublaslt(a, b, p, out, accumulate, fast_accum, stream);
    }
    // Bias, the tensor to add (unless the product accumulated into it) and BF16 rounding.
    const float* add = accumulate ? nullptr : o.add;
    if (o.bias || add || o.bf16)
        finish_gemm_output({out, 1, o.bias, add, 1.0f, o.out, o.bf16, n, m}, stream);
    return p;
}

// The per-tensor and outer-vector pairs through cuBLASLt, FP32 out (+= where accumulate).
void ScaledGemm::run_cublaslt(const DeviceQuantized& a, const DeviceQuantized& b, ScaledGemmPath p,
                              float* out, bool accumulate, bool fast_accum, cudaStream_t stream) {
    const int64_t n = a.rows, m = b.rows, k = a.cols;
    const bool outer = p == ScaledGemmPath::outer_vector;
    const ScaleLayout layout = outer ? ScaleLayout::per_row : ScaleLayout::scalar;
    gather_scales(a.views(), n, k, layout, 0, a_scales_, stream);
    gather_scales(b.views(), m, k, layout, 0, b_scales_, stream);
    GemmArgs g{a.codes.data(),
               b.codes.data(),
               a.format,
               b.format,
               a_scales_.data(),
               b_scales_.data(),
               outer ? GemmScaling::outer_vector : GemmScaling::per_tensor,
               out,
               n,
               m,
               k,
               fast_accum && !outer};
    g.out_fp32 = true;
    g.beta = accumulate ? 1.0f : 0.0f;
    gemm_.run(g, stream);
}

// Every level of a folded into its scales per row and group; b's into its block or group
// scales, or, per tensor, into alpha.
void ScaledGemm::run_microscaled(const DeviceQuantized& a, const DeviceQuantized& b, int group,
                                 MicroscaledB b_scaling, const ScaledGemmOutput& out,
                                 cudaStream_t stream) {
    const int64_t n = a.rows, m = b.rows, k = a.cols;
    gather_scales(a.views(), n, k, ScaleLayout::k_groups, group, a_scales_, stream);
    const ScaleLayout b_layout = b_scaling == MicroscaledB::per_tensor ? ScaleLayout::scalar
                                 : b_scaling == MicroscaledB::blocks_128x128
                                     ? ScaleLayout::k_tiles
                                     : ScaleLayout::k_groups;
    gather_scales(b.views(), m, k, b_layout, group, b_scales_, stream);
    const bool b_whole = b_scaling == MicroscaledB::per_tensor;
    MicroscaledGemmArgs g{};
    g.a = a.codes.data();
    g.b = b.codes.data();
    g.a_scales = a_scales_.data();
    g.b_scales = b_whole ? nullptr : b_scales_.data();
    g.b_scaling = b_scaling;
    g.group = group;
    g.a_format = a.format;
    g.alpha = b_whole ? b_scales_.data() : nullptr;
    g.out = out.out;
    g.out_fp32 = !out.bf16;
    g.beta = out.add ? 1.0f : 0.0f;
    g.m = n;
    g.n = m;
    g.k = k;
    g.bias = out.bias;
    g.c = out.add;
    microscaled_.run(g, stream);
}

// Dequantized operands through a dense GEMM. BF16: the varying levels go into the operands (exact
// for powers of two), the per-tensor ones multiply the FP32 product.
void ScaledGemm::emulate(const DeviceQuantized& a, const DeviceQuantized& b, float* out,
                         bool accumulate, bool bf16, cudaStream_t stream) {
    const int64_t n = a.rows, m = b.rows, k = a.cols;
    if (!bf16) {
        a_fp32_.resize(a.numel());
        b_fp32_.resize(b.numel());
        dequantize(a, a_fp32_.data(), stream);
        dequantize(b, b_fp32_.data(), stream);
        gemm_.run(DenseGemmArgs{a_fp32_.data(), b_fp32_.data(), false, false, true, out, nullptr,
                                accumulate ? 1.0f : 0.0f, n, m, k},
                  stream);
        return;
    }
    dequantize_varying_bf16(a, a_bf16_, stream);
    dequantize_varying_bf16(b, b_bf16_, stream);
    // The per-tensor levels' product, applied by the GEMM's epilogue.
    a_scales_.resize(1);
    whole_scale_product(a.views(Levels::whole), b.views(Levels::whole), a_scales_.data(), stream);
    DenseGemmArgs g{a_bf16_.data(), b_bf16_.data(),           true, false, true, out,
                    nullptr,        accumulate ? 1.0f : 0.0f, n,    m,     k};
    g.alpha = a_scales_.data();
    gemm_.run(g, stream);
}

} // namespace octet::cuda
