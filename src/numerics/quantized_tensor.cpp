// Scale grids and dequantization of a QuantizedTensor (layout documented in the header).
#include "numerics/quantized_tensor.h"

#include <algorithm>

#include "numerics/e8m0.h"

namespace octet {

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

ScaleGrid make_scale_grid(int64_t rows, int64_t cols, int64_t block_rows, int64_t block_cols,
                          ScaleEncoding encoding) {
    ScaleGrid g;
    g.block_rows = block_rows;
    g.block_cols = block_cols;
    g.grid_rows = ceil_div(rows, block_rows);
    g.grid_cols = ceil_div(cols, block_cols);
    g.encoding = encoding;
    g.scale_inv.assign(size_t(g.grid_rows * g.grid_cols), 1.0f);
    return g;
}

std::vector<uint8_t> ScaleGrid::e8m0_codes() const {
    std::vector<uint8_t> codes(scale_inv.size());
    for (size_t i = 0; i < scale_inv.size(); ++i)
        codes[i] = e8m0_encode(scale_inv[i], E8M0Rounding::down);
    return codes;
}

bool ScaleGrid::all_powers_of_two() const {
    for (float s : scale_inv)
        if (!(s > 0.0f) || !is_power_of_two(s)) return false;
    return true;
}

float QuantizedTensor::scale_inv_at(int64_t row, int64_t col) const {
    float s = 1.0f;
    for (const ScaleGrid& g : scales) s *= g.at(row, col);
    return s;
}

std::vector<float> dequantize(const QuantizedTensor& q) {
    // Decoded values of all 256 codes, then one combined scale per column of the row: no
    // division per element.
    float table[256];
    for (uint32_t c = 0; c < 256; ++c) table[c] = decode(c, q.format);
    std::vector<float> x(size_t(q.numel()));
    std::vector<float> row_scale(size_t(q.cols));
    for (int64_t r = 0; r < q.rows; ++r) {
        std::fill(row_scale.begin(), row_scale.end(), 1.0f);
        for (const ScaleGrid& g : q.scales) {
            const float* s = g.scale_inv.data() + (r / g.block_rows) * g.grid_cols;
            for (int64_t cb = 0; cb < g.grid_cols; ++cb) {
                const int64_t c1 = std::min(q.cols, (cb + 1) * g.block_cols);
                for (int64_t c = cb * g.block_cols; c < c1; ++c) row_scale[size_t(c)] *= s[cb];
            }
        }
        const uint8_t* codes = q.codes.data() + r * q.cols;
        float* out = x.data() + r * q.cols;
        for (int64_t c = 0; c < q.cols; ++c) out[c] = table[codes[c]] * row_scale[size_t(c)];
    }
    return x;
}

const char* format_name(Format f) {
    switch (f) {
    case Format::e4m3:
        return "e4m3";
    case Format::e5m2:
        return "e5m2";
    case Format::fp16:
        return "fp16";
    default:
        return "bf16";
    }
}

const char* scale_encoding_name(ScaleEncoding e) {
    return e == ScaleEncoding::fp32 ? "fp32" : "e8m0";
}

} // namespace octet
