// The machinery every single-level recipe shares: amax per block, then one scale per block, then
// the cast. Recipes differ only in block shape, format and the rule from amax to scale.
#pragma once

#include <functional>
#include <vector>

#include "numerics/quantized_tensor.h"
#include "numerics/scaling.h"

namespace octet {

// The block one scale covers. A dimension of 0 spans the tensor's whole extent: {0, 0} is one
// scale per tensor, {1, 0} one per row.
struct BlockShape {
    int64_t rows;
    int64_t cols;
};

// The amax of the finite elements of each block, row-major over the block grid.
std::vector<float> block_amax(MatrixView x, BlockShape block);

// The amax of the finite elements of the whole tensor (0 for an empty one).
float tensor_amax(MatrixView x);

// Quantize with one given scale per block (scales.size() == number of blocks).
QuantizedTensor quantize_with_scales(MatrixView x, Format format, BlockShape block,
                                     ScaleEncoding encoding, const std::vector<BlockScale>& scales);

// Quantize the whole tensor with one given scale (no scale at all for an empty tensor).
QuantizedTensor quantize_per_tensor(MatrixView x, Format format, BlockScale scale);

// Quantize with the scale of each block computed from its amax by `rule`.
QuantizedTensor quantize_blocks(MatrixView x, Format format, BlockShape block,
                                ScaleEncoding encoding,
                                const std::function<BlockScale(float amax)>& rule);

} // namespace octet
