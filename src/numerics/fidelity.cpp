// Fidelity metrics (definitions in the header), accumulated in float64.
#include "numerics/fidelity.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace octet {

FidelityMetrics measure_fidelity(MatrixView x, const QuantizedTensor& q) {
    if (x.rows != q.rows || x.cols != q.cols)
        throw Error("fidelity: tensor is " + std::to_string(x.rows) + "x" + std::to_string(x.cols) +
                    " but its quantized form is " + std::to_string(q.rows) + "x" +
                    std::to_string(q.cols));
    const FormatSpec spec = format_spec(q.format);
    const double max = decode(spec.max_finite_code, q.format);
    // Values up to max + half an ulp round to max; beyond that they overflow.
    const double overflow_at = max + (max - decode(spec.max_finite_code - 1, q.format)) / 2;
    const std::vector<float> xq = dequantize(q);

    double signal = 0, noise = 0, row_db_sum = 0;
    int64_t finite = 0, nonzero = 0, flushed = 0, saturated = 0, rows_in_mean = 0;
    FidelityMetrics m;
    m.count = x.rows * x.cols;
    double row_signal = 0, row_noise = 0;
    for (int64_t i = 0; i < m.count; ++i) {
        if (i % x.cols == 0) row_signal = row_noise = 0;
        const double v = x.data[i];
        const double vq = xq[size_t(i)];
        if (std::isfinite(v)) {
            ++finite;
            signal += v * v;
            noise += (v - vq) * (v - vq);
            row_signal += v * v;
            row_noise += (v - vq) * (v - vq);
        }
        if (i % x.cols == x.cols - 1 && row_signal > 0 && row_noise > 0) {
            row_db_sum += 10.0 * std::log10(row_signal / row_noise);
            ++rows_in_mean;
        }
        if (!std::isfinite(v)) {
            ++m.nonfinite;
            continue;
        }
        if (v != 0) {
            ++nonzero;
            if (vq == 0) ++flushed;
        }
        if (std::fabs(v) > overflow_at * q.scale_inv_at(i / x.cols, i % x.cols)) ++saturated;
    }
    const double inf = std::numeric_limits<double>::infinity();
    m.snr_db = noise == 0 ? inf : signal == 0 ? -inf : 10.0 * std::log10(signal / noise);
    m.snr_rows_db = rows_in_mean ? row_db_sum / double(rows_in_mean) : m.snr_db;
    m.rel_error = signal == 0 ? (noise == 0 ? 0.0 : inf) : std::sqrt(noise / signal);
    m.flushed_fraction = nonzero ? double(flushed) / double(nonzero) : 0.0;
    m.saturated_fraction = finite ? double(saturated) / double(finite) : 0.0;
    return m;
}

} // namespace octet
