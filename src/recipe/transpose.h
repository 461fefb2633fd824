// FP8 transposes. Backward needs the other orientation of a quantized tensor: wgrad = dyᵀ·x wants
// groups along tokens, where the forward quantized along channels. Both functions return the
// tensor of shape [cols, rows], quantized along its new K (the input's rows).
#pragma once

#include "numerics/quantized_tensor.h"
#include "recipe/recipe.h"

namespace octet {

// dequantize → transpose → requantize with `requantizer` (the recipe's own rule, new amaxes).
// Two roundings; works for any recipe.
QuantizedTensor transpose_naive(const QuantizedTensor& q, Quantizer& requantizer);

// FP8-Flow-MoE's scaling-aware transpose (arXiv 2511.02302 §3.3). Needs one scale level of 1×G
// groups with power-of-two scales (blockwise:pow2=true). Per G×G tile, the column scale t is the
// largest row scale of the tile (rows whose group is all zero do not count); each element is
// re-expressed at scale t by lowering its exponent by log2(t / row scale). Exact while the value
// stays normal; values that fall below the smallest normal are rounded to nearest-even subnormals
// (the published kernel truncates them). Output groups are 1×G with the tile's t repeated.
QuantizedTensor transpose_scaling_aware(const QuantizedTensor& q);

// The transposed operand a backward GEMM needs, the way the recipe's layout allows:
// - one level whose blocks are square or cover the tensor (per-tensor, 128×128 weights): the codes
//   move and the scale grid transposes, exactly;
// - one level of 1×G power-of-two groups: scaling-aware;
// - anything else: naive, requantized by `requantizer`.
QuantizedTensor transpose_for_gemm(const QuantizedTensor& q, Quantizer& requantizer);

} // namespace octet
