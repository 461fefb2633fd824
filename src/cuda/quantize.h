// The quantization of an FP8 layer's x and dy (fp8_transpose.h's quantize_both): both
// orientations in groups of 32 or 128 from one read of BF16 or FP32, MOSS's after a pass for the
// tensor's amax, by the same rules as the CPU recipes (numerics/scaling.h is shared), so codes and
// scales agree bit for bit. Other plans run in quantize_plan.h.
#pragma once

#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "numerics/formats.h"
#include "recipe/quantize_plan.h"

namespace octet::cuda {

// The finite amax of x[0, n) as float bits at *amax_bits (zeroed first; 0 for an empty x).
template <typename T>
void tensor_finite_amax(const T* x, int64_t n, uint32_t* amax_bits, cudaStream_t stream);

// Groups of G along each orientation from one read of x [rows, cols], as the backward needs: the
// row-wise copy (1×G groups along cols) and the column-wise copy — x transposed, [cols, rows],
// groups of G along the original rows — each with its scale_inv grid, the same codes and scales
// as quantizing each orientation on its own. A 128 × 128 tile per block in shared memory, a
// thread per row or column of it. Two kinds of plans:
// - blocks (block-wise 1×128, MX 1×32): each group's scale by `rule` (`rule_t`);
// - MOSS two-level with one global scale for the tensor (`tensor_amax` given): the global s from
//   the tensor's finite amax (tensor_finite_amax, run first), each group's E8M0 local scale under
//   it (recipe/moss.h) in the scale_inv grids, s itself at global_scale_inv and
//   global_scale_inv_t; `format` and `format_t` equal, the rules unused.
struct BothOrientationsArgs {
    int64_t rows, cols;
    int group; // G: 32 or 128
    ScaleRule rule;
    Format format;
    uint8_t* codes;   // [rows, cols]
    float* scale_inv; // [rows, ceil(cols / G)]
    ScaleRule rule_t;
    Format format_t;
    uint8_t* codes_t;   // [cols, rows]
    float* scale_inv_t; // [cols, ceil(rows / G)]
    // Two-level plans (nullptr: blocks): the tensor's finite amax as float bits, and where s goes.
    const uint32_t* tensor_amax = nullptr;
    float* global_scale_inv = nullptr;
    float* global_scale_inv_t = nullptr;
    // Optional (nullptr: none): each column's sum over each 128 rows, [ceil(rows / 128), cols]
    // (a layer's bias gradient from its dy, with column_finish).
    float* column_sums = nullptr;
};
void quantize_both_orientations(const float* x, const BothOrientationsArgs& a, cudaStream_t stream);
void quantize_both_orientations(const __nv_bfloat16* x, const BothOrientationsArgs& a,
                                cudaStream_t stream);

// The output of an activation between two FP8 layers, [rows, cols], quantized as it is computed
// from the activation's BF16 inputs: the activation writes nothing, and the one-pass kernel
// reads its inputs instead of its output, each value rounded to BF16 as the activation stores it
// for such a layer, so the codes, scales and sums are those of that output, bit for bit.
struct ElementwiseSource {
    enum class Op {
        gelu,          // gelu(x), x [rows, cols]
        gelu_backward, // gelu'(x) · d_out, both [rows, cols]
        swiglu,        // silu(gate) · up, x = gate | up [rows, 2 cols]
        // d gate | d up [rows, cols] from x [rows, cols] and d_out [rows, cols / 2]
        swiglu_backward,
    };
    Op op;
    const __nv_bfloat16* x;
    const __nv_bfloat16* d_out; // the backwards' (nullptr for the forwards)
};
// Whether the kernel takes `source` as an output of rows × cols: rows of whole quads (of each
// half, for SwiGLU's gradient) at 8-byte aligned addresses.
bool quantizes_as_computed(const ElementwiseSource& source, int64_t rows, int64_t cols);
void tensor_finite_amax(const ElementwiseSource& source, int64_t rows, int64_t cols,
                        uint32_t* amax_bits, cudaStream_t stream);
void quantize_both_orientations(const ElementwiseSource& source, const BothOrientationsArgs& a,
                                cudaStream_t stream);

} // namespace octet::cuda
