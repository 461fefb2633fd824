// Fidelity of a quantized tensor against the high-precision one it came from.
//   snr_db             10·log10(Σx² / Σ(x − x̂)²) over finite elements (+inf when exact)
//   snr_rows_db        geometric mean over rows (tokens) of each row's SNR, in dB: MOSS's
//                      "geo-mean SNR" read as one SNR per token (docs/numerics.md). The tensor SNR
//                      is ruled by the largest elements; this one weighs every token alike, so it
//                      shows the underflow of small tokens that a shared scale causes. Rows that
//                      are exact or all zero are left out of the mean.
//   rel_error          ‖x − x̂‖ / ‖x‖
//   flushed_fraction   non-zero finite elements that became 0, over the non-zero finite ones
//   saturated_fraction finite elements beyond the format's range at their scale (they would have
//                      overflowed without saturation), over the finite ones
//   nonfinite          NaN/Inf elements of x (excluded from the sums above)
#pragma once

#include <cstdint>

#include "numerics/quantized_tensor.h"

namespace octet {

struct FidelityMetrics {
    double snr_db = 0.0;
    double snr_rows_db = 0.0;
    double rel_error = 0.0;
    double flushed_fraction = 0.0;
    double saturated_fraction = 0.0;
    int64_t nonfinite = 0;
    int64_t count = 0;
};

FidelityMetrics measure_fidelity(MatrixView x, const QuantizedTensor& q);

} // namespace octet
