// MOSS two-level microscaling (arXiv 2511.05811), for GEMM inputs: per group of G elements along K
//   s_i  = amax_i / fmt_max                       (group scale, never stored)
//   s    = max_i s_i over a coarse block          (global FP32 scale, level 1)
//   ss_i = 2^ceil(log2(s_i / s)) ≤ 1              (local E8M0 scale, level 0)
//   Q_i  = cast(X_i · (1/s) · 2^-log2(ss_i)),  X ≈ Q_i · ss_i · s
// The coarse block spans whole rows (global_rows rows × all of K, or the whole tensor): a global
// scale must be constant along K so that a GEMM can apply it once, in the epilogue.
#pragma once

#include "numerics/quantized_tensor.h"

namespace octet {

struct TwoLevelOptions {
    int64_t group = 32;      // G: elements per local scale, along K
    int64_t global_rows = 0; // rows per global scale; 0 = one global scale for the tensor
    Format format = Format::e4m3;
};

QuantizedTensor quantize_two_level(MatrixView x, const TwoLevelOptions& options);

} // namespace octet
