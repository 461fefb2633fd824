// FP8 transposes. Backward needs the other orientation of a quantized tensor: wgrad = dyᵀ·x wants
// groups along tokens, where the forward quantized along channels. Every function returns the
// tensor of shape [cols, rows], quantized along its new K (the input's rows).
#pragma once

#include <vector>

#include "numerics/quantized_tensor.h"
#include "recipe/recipe.h"

namespace octet {

// x [rows, cols] transposed, still in FP32: [cols, rows].
std::vector<float> transposed(const float* x, int64_t rows, int64_t cols);

// dequantize → transpose → requantize with `requantizer` (the recipe's own rule, new amaxes).
// Two roundings; works for any recipe without the high-precision tensor (the reference that
// scaling-aware transposes are measured against).
QuantizedTensor transpose_naive(const QuantizedTensor& q, Quantizer& requantizer);

// FP8-Flow-MoE's scaling-aware transpose (arXiv 2511.02302 §3.3). Needs one scale level of 1×G
// groups with power-of-two scales (blockwise:pow2=true). Per G×G tile, the column scale t is the
// largest row scale of the tile (rows whose group is all zero do not count); each element is
// re-expressed at scale t by lowering its exponent by log2(t / row scale). Exact while the value
// stays normal; values that fall below the smallest normal are rounded to nearest-even subnormals
// (the published kernel truncates them). Output groups are 1×G with the tile's t repeated.
QuantizedTensor transpose_scaling_aware(const QuantizedTensor& q);

// How a backward GEMM's operand is transposed, the way the recipe's layout allows:
// - exact: one level whose blocks are square or cover the tensor (per-tensor, 128×128 weights):
//   the codes move and the scale grid transposes;
// - scaling_aware: one level of 1×G groups that the plan makes powers of two;
// - from_source: anything else: the high-precision tensor itself, transposed, quantized by the
//   recipe's quantizer for the transposed tensor. One rounding, as TE's column-wise copies and
//   DeepSeek-V3's backward have it (requantizing the FP8 codes would round twice).
// Decided from the plan that quantized the [rows, cols] tensor, never from its data, so every
// backend takes the same path without looking at the scales.
enum class TransposeMethod { exact, scaling_aware, from_source };
TransposeMethod transpose_method(const QuantizePlan& plan, int64_t rows, int64_t cols);

// `source` is the [rows, cols] tensor q was quantized from (read by from_source only).
QuantizedTensor transpose_for_gemm(const QuantizedTensor& q, TransposeMethod method,
                                   Quantizer& requantizer, const float* source);

// Whether a tensor and its transpose both quantize in groups of G = 32 or 128 along their rows,
// each group on its own (block-wise 1×128, MX 1×32: no amax of the tensor, none of earlier
// steps) or under one global scale from the tensor's amax (MOSS two-level, global per tensor,
// which the transpose shares). One read of the tensor then gives both copies (the GPU's
// quantize_both_orientations, after an amax pass for MOSS), and an FP8 layer takes its x and dy
// in BF16 from the ops that write them (LinearPrecision::fp8_bf16_sources()).
bool quantizes_both_in_one_pass(Quantizer& rowwise, Quantizer& columnwise);

} // namespace octet
