// FP8 transposes: exact, scaling-aware, from the source and naive (see transpose.h).
#include "recipe/transpose.h"

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "numerics/scaling.h"

namespace octet {

std::vector<float> transposed(const float* x, int64_t rows, int64_t cols) {
    std::vector<float> t(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = x[r * cols + c];
    return t;
}

QuantizedTensor transpose_naive(const QuantizedTensor& q, Quantizer& requantizer) {
    const std::vector<float> xt = transposed(dequantize(q).data(), q.rows, q.cols);
    return requantizer.quantize({xt.data(), q.cols, q.rows});
}

// Codes and scale grid both transposed: exact whenever the blocks map onto blocks.
static QuantizedTensor transpose_exact(const QuantizedTensor& q) {
    const ScaleGrid& in = q.scales[0];
    QuantizedTensor out;
    out.format = q.format;
    out.rows = q.cols;
    out.cols = q.rows;
    out.codes.resize(q.codes.size());
    for (int64_t r = 0; r < q.rows; ++r)
        for (int64_t c = 0; c < q.cols; ++c)
            out.codes[size_t(c * q.rows + r)] = q.codes[size_t(r * q.cols + c)];
    ScaleGrid grid = in;
    std::swap(grid.block_rows, grid.block_cols);
    std::swap(grid.grid_rows, grid.grid_cols);
    for (int64_t i = 0; i < in.grid_rows; ++i)
        for (int64_t j = 0; j < in.grid_cols; ++j)
            grid.scale_inv[size_t(j * in.grid_rows + i)] =
                in.scale_inv[size_t(i * in.grid_cols + j)];
    out.scales.push_back(std::move(grid));
    return out;
}

bool quantizes_both_in_one_pass(Quantizer& rowwise, Quantizer& columnwise) {
    // Such quantizers plan without side effects (they keep no history).
    const auto planned_alone = [](Quantizer& q, QuantizePlan& plan) {
        if (q.needs_tensor_amax() || q.amax_may_follow()) return false;
        plan = q.plan(0.0f);
        return plan.sync_bound == nullptr;
    };
    QuantizePlan p, t;
    if (!planned_alone(rowwise, p) || !planned_alone(columnwise, t) || p.kind != t.kind)
        return false;
    const auto one_pass_group = [](int64_t g) { return g == 32 || g == 128; };
    if (p.kind == QuantizePlan::Kind::two_level)
        return p.two_level.global_rows == 0 && t.two_level.global_rows == 0 &&
               p.two_level.group == t.two_level.group && one_pass_group(p.two_level.group) &&
               p.two_level.format == t.two_level.format;
    return p.block.rows == 1 && t.block.rows == 1 && p.block.cols == t.block.cols &&
           one_pass_group(p.block.cols);
}

TransposeMethod transpose_method(const QuantizePlan& plan, int64_t rows, int64_t cols) {
    if (plan.kind != QuantizePlan::Kind::blocks) return TransposeMethod::from_source;
    const int64_t block_rows = plan.block.rows ? plan.block.rows : std::max<int64_t>(rows, 1);
    const int64_t block_cols = plan.block.cols ? plan.block.cols : std::max<int64_t>(cols, 1);
    const bool whole = block_rows >= rows && block_cols >= cols;
    if (whole || block_rows == block_cols) return TransposeMethod::exact;
    if (block_rows == 1 && plan.power_of_two_scales()) return TransposeMethod::scaling_aware;
    return TransposeMethod::from_source;
}

QuantizedTensor transpose_for_gemm(const QuantizedTensor& q, TransposeMethod method,
                                   Quantizer& requantizer, const float* source) {
    switch (method) {
    case TransposeMethod::exact:
        return transpose_exact(q);
    case TransposeMethod::scaling_aware:
        return transpose_scaling_aware(q);
    default: {
        const std::vector<float> xt = transposed(source, q.rows, q.cols);
        return requantizer.quantize({xt.data(), q.cols, q.rows});
    }
    }
}

QuantizedTensor transpose_scaling_aware(const QuantizedTensor& q) {
    if (q.scales.size() != 1 || q.scales[0].block_rows != 1)
        throw Error("scaling-aware transpose needs one level of 1xG group scales");
    const ScaleGrid& in = q.scales[0];
    if (!in.all_powers_of_two())
        throw Error("scaling-aware transpose needs power-of-two scales (e.g. blockwise:pow2=true)");
    const int64_t g = in.block_cols;
    const int64_t tile_rows = (q.rows + g - 1) / g;

    // t per tile (row block × column group): the largest scale of a group holding a non-zero.
    std::vector<float> tile_scale(size_t(tile_rows * in.grid_cols), 0.0f);
    for (int64_t r = 0; r < q.rows; ++r) {
        for (int64_t cg = 0; cg < in.grid_cols; ++cg) {
            const int64_t c1 = std::min(q.cols, (cg + 1) * g);
            bool nonzero = false;
            for (int64_t c = cg * g; c < c1 && !nonzero; ++c)
                nonzero = (q.codes[size_t(r * q.cols + c)] & 0x7F) != 0;
            float& t = tile_scale[size_t((r / g) * in.grid_cols + cg)];
            if (nonzero) t = std::max(t, in.scale_inv[size_t(r * in.grid_cols + cg)]);
        }
    }
    for (float& t : tile_scale)
        if (t == 0.0f) t = 1.0f;

    QuantizedTensor out;
    out.format = q.format;
    out.rows = q.cols;
    out.cols = q.rows;
    out.codes.resize(q.codes.size());
    ScaleGrid grid = make_scale_grid(out.rows, out.cols, 1, g, in.encoding);
    for (int64_t j = 0; j < out.rows; ++j)
        for (int64_t rb = 0; rb < grid.grid_cols; ++rb)
            grid.scale_inv[size_t(j * grid.grid_cols + rb)] =
                tile_scale[size_t(rb * in.grid_cols + j / g)];

    for (int64_t r = 0; r < q.rows; ++r) {
        for (int64_t c = 0; c < q.cols; ++c) {
            const float t = tile_scale[size_t((r / g) * in.grid_cols + c / g)];
            // ≥ 0 except in all-zero groups; beyond 40 every FP8 value (< 2^16) rounds to zero.
            const int shift = std::min(floor_log2(t) - floor_log2(in.at(r, c)), 40);
            const uint8_t code = q.codes[size_t(r * q.cols + c)];
            // decode is exact and so is the product by 2^-shift (FP8 values are far from float's
            // subnormals), so encode rounds the exact shifted value once: correct subnormals.
            // Nothing grows, so the overflow mode only keeps E5M2's ±Inf as it was.
            const float shifted = decode(code, q.format) * exp2i(-shift);
            out.codes[size_t(c * q.rows + r)] = uint8_t(encode(shifted, q.format, Overflow::ieee));
        }
    }
    out.scales.push_back(std::move(grid));
    return out;
}

} // namespace octet
