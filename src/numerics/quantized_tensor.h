// A quantized tensor: FP8 codes plus the scales that map them back, with the layout of those scales
// spelled out (which block of elements each scale covers). Every recipe produces one; dequantize()
// needs nothing else, so a tensor can be checked, saved or transposed without knowing its recipe.
//
// Layout: a 2-D tensor of `rows × cols`, row-major; cols is the contiguous axis, the K of a GEMM.
// A tensor of higher rank is viewed as [product of leading dims, last dim]. Each scale level is a
// grid of `ceil(rows / block_rows) × ceil(cols / block_cols)` scales, row-major. A block at the
// edge that is cut short by the tensor's end covers only the elements that exist: its scale comes
// from them alone (no padding enters the amax); GPU layouts pad storage, never values.
//
// A stored scale is `scale_inv`: it MULTIPLIES the decoded code. With several levels (MOSS: a
// per-group E8M0 level and a global FP32 level), all of them multiply:
//     x ≈ decode(code) · scale_inv[level 0] · scale_inv[level 1] · …
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "numerics/formats.h"

namespace octet {

// How a scale level is stored: FP32 values, or E8M0 codes (powers of two; scale_inv holds their
// values for arithmetic, and the codes are what a kernel or a file gets).
enum class ScaleEncoding : uint8_t { fp32, e8m0 };

struct ScaleGrid {
    int64_t block_rows = 1;
    int64_t block_cols = 1;
    int64_t grid_rows = 0;
    int64_t grid_cols = 0;
    ScaleEncoding encoding = ScaleEncoding::fp32;
    std::vector<float> scale_inv; // grid_rows × grid_cols, row-major

    float at(int64_t row, int64_t col) const {
        return scale_inv[size_t((row / block_rows) * grid_cols + col / block_cols)];
    }
    std::vector<uint8_t> e8m0_codes() const; // for encoding == e8m0
    bool all_powers_of_two() const;
};

// A grid shaped for a tensor, filled with 1.
ScaleGrid make_scale_grid(int64_t rows, int64_t cols, int64_t block_rows, int64_t block_cols,
                          ScaleEncoding encoding);

struct QuantizedTensor {
    Format format = Format::e4m3;
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<uint8_t> codes; // rows × cols, row-major
    std::vector<ScaleGrid> scales;

    int64_t numel() const { return rows * cols; }
    // The product of every level's scale_inv for one element.
    float scale_inv_at(int64_t row, int64_t col) const;
};

// A read-only view of a row-major float matrix.
struct MatrixView {
    const float* data = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
    float at(int64_t r, int64_t c) const { return data[r * cols + c]; }
};

std::vector<float> dequantize(const QuantizedTensor& q);

const char* format_name(Format f);
const char* scale_encoding_name(ScaleEncoding e);

} // namespace octet
