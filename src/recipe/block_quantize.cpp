// Block amax, per-block scaling and the cast shared by the single-level recipes.
#include "recipe/block_quantize.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace octet {

// Replaces 0 ("whole extent") by the tensor's dimension, at least 1 so an empty tensor has an
// empty grid rather than a division by zero.
static BlockShape resolve(MatrixView x, BlockShape block) {
    if (x.rows < 0 || x.cols < 0) throw Error("tensor shape has a negative dimension");
    if (block.rows < 0 || block.cols < 0) throw Error("scale block shape must not be negative");
    return {block.rows ? block.rows : std::max<int64_t>(x.rows, 1),
            block.cols ? block.cols : std::max<int64_t>(x.cols, 1)};
}

std::vector<float> block_amax(MatrixView x, BlockShape block) {
    block = resolve(x, block);
    const ScaleGrid g =
        make_scale_grid(x.rows, x.cols, block.rows, block.cols, ScaleEncoding::fp32);
    std::vector<float> amax(size_t(g.grid_rows * g.grid_cols), 0.0f);
    for (int64_t r = 0; r < x.rows; ++r) {
        float* row_amax = amax.data() + (r / block.rows) * g.grid_cols;
        for (int64_t c = 0; c < x.cols; ++c) {
            float& m = row_amax[c / block.cols];
            m = finite_amax(m, x.at(r, c));
        }
    }
    return amax;
}

float tensor_amax(MatrixView x) {
    if (x.rows == 0 || x.cols == 0) return 0.0f;
    return block_amax(x, {0, 0})[0];
}

QuantizedTensor quantize_with_scales(MatrixView x, Format format, BlockShape block,
                                     ScaleEncoding encoding,
                                     const std::vector<BlockScale>& scales) {
    block = resolve(x, block);
    QuantizedTensor q;
    q.format = format;
    q.rows = x.rows;
    q.cols = x.cols;
    q.codes.resize(size_t(x.rows * x.cols));
    ScaleGrid g = make_scale_grid(x.rows, x.cols, block.rows, block.cols, encoding);
    if (scales.size() != g.scale_inv.size())
        throw Error("quantize_with_scales: " + std::to_string(scales.size()) + " scales for " +
                    std::to_string(g.scale_inv.size()) + " blocks");
    for (size_t i = 0; i < scales.size(); ++i) g.scale_inv[i] = scales[i].scale_inv;
    for (int64_t r = 0; r < x.rows; ++r) {
        const BlockScale* row_scales = scales.data() + (r / block.rows) * g.grid_cols;
        for (int64_t c = 0; c < x.cols; ++c)
            q.codes[size_t(r * x.cols + c)] =
                cast_scaled(x.at(r, c), row_scales[c / block.cols].scale, format);
    }
    q.scales.push_back(std::move(g));
    return q;
}

QuantizedTensor quantize_per_tensor(MatrixView x, Format format, BlockScale scale) {
    const size_t blocks = x.rows > 0 && x.cols > 0 ? 1 : 0;
    return quantize_with_scales(x, format, {0, 0}, ScaleEncoding::fp32,
                                std::vector<BlockScale>(blocks, scale));
}

QuantizedTensor quantize_blocks(MatrixView x, Format format, BlockShape block,
                                ScaleEncoding encoding,
                                const std::function<BlockScale(float amax)>& rule) {
    const std::vector<float> amax = block_amax(x, block);
    std::vector<BlockScale> scales(amax.size());
    for (size_t i = 0; i < amax.size(); ++i) scales[i] = rule(amax[i]);
    return quantize_with_scales(x, format, block, encoding, scales);
}

} // namespace octet
