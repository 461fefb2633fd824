// Scaling-aware transpose kernel (see transpose.h).
// Grid: one block of 256 threads per 128×128 tile (rows rb, column group cb). The tile's codes are
// staged in shared memory (rows padded by 4 bytes against bank conflicts) while each row of the
// tile records whether its group holds a non-zero; t is the largest scale among those rows.
#include "cuda/check.h"
#include "cuda/transpose.h"

namespace octet::cuda {
namespace {

constexpr int tile = 128;
constexpr int threads = 256; // also one thread per FP8 code for the decode table

// `value` is decode(code) (from the block's table): shifting it by 2^-shift is exact, FP8 values
// being far from float's subnormals.
__device__ uint8_t shift_code(uint8_t code, float value, int shift, Format f) {
    const float v = value * exp2i(-shift);
    if ((code & 0x7F) == 0x7F || (f == Format::e5m2 && (code & 0x7C) == 0x7C))
        return uint8_t(encode(v, f, Overflow::ieee)); // NaN, and E5M2's Inf, stay what they are
    unsigned short pair; // finite: Hopper's RNE cvt equals the codec (tests/cuda/test_cast.cu)
    if (f == Format::e4m3)
        asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %1;" : "=h"(pair) : "f"(v));
    else
        asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %1;" : "=h"(pair) : "f"(v));
    return uint8_t(pair & 0xFFu);
}

__global__ void scaling_aware_transpose_kernel(ScalingAwareTransposeArgs a) {
    __shared__ __align__(16) uint8_t codes[tile][tile + 4];
    __shared__ int nonzero[tile];
    __shared__ float row_scale[tile];
    __shared__ float t_shared;
    __shared__ float decoded[256];
    decoded[threadIdx.x] = decode(threadIdx.x, a.format); // threads == 256: one code each
    const int64_t col_groups = (a.cols + tile - 1) / tile;
    const int64_t rb = blockIdx.x / col_groups, cb = blockIdx.x % col_groups;
    const int64_t r0 = rb * tile, c0 = cb * tile;
    const int rows_here = int(min(int64_t(tile), a.rows - r0)),
              cols_here = int(min(int64_t(tile), a.cols - c0));
    if (threadIdx.x < tile) {
        nonzero[threadIdx.x] = 0;
        row_scale[threadIdx.x] =
            threadIdx.x < rows_here ? a.scale_inv[(r0 + threadIdx.x) * col_groups + cb] : 0.0f;
    }
    __syncthreads();
    // Full tiles of 4-aligned shapes move 4 codes per access; edge tiles go byte by byte.
    const bool full = rows_here == tile && cols_here == tile && a.cols % 4 == 0 && a.rows % 4 == 0;
    if (full) {
        for (int i = threadIdx.x; i < tile * tile / 4; i += threads) {
            const int r = i / (tile / 4), c = (i % (tile / 4)) * 4;
            const uint32_t v =
                *reinterpret_cast<const uint32_t*>(a.codes + (r0 + r) * a.cols + c0 + c);
            *reinterpret_cast<uint32_t*>(&codes[r][c]) = v;
            if (v & 0x7F7F7F7Fu) nonzero[r] = 1; // benign race: every writer stores 1
        }
    } else {
        for (int i = threadIdx.x; i < tile * tile; i += threads) {
            const int r = i / tile, c = i % tile;
            uint8_t v = 0;
            if (r < rows_here && c < cols_here) v = a.codes[(r0 + r) * a.cols + c0 + c];
            codes[r][c] = v;
            if (v & 0x7F) nonzero[r] = 1;
        }
    }
    __syncthreads();
    if (threadIdx.x < 32) { // t = max scale over rows whose group holds a non-zero
        float m = 0.0f;
        for (int r = threadIdx.x; r < rows_here; r += 32)
            if (nonzero[r]) m = fmaxf(m, row_scale[r]);
        for (int offset = 16; offset > 0; offset /= 2)
            m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, offset));
        if (threadIdx.x == 0) t_shared = m > 0.0f ? m : 1.0f;
    }
    __syncthreads();
    const float t = t_shared;
    const int t_exp = floor_log2(t);
    // Output row c (a column of the input) gets the tile's 128 input rows: coalesced writes.
    if (full) {
        for (int i = threadIdx.x; i < tile * tile / 4; i += threads) {
            const int c = i / (tile / 4), r = (i % (tile / 4)) * 4;
            uint32_t packed = 0;
            for (int j = 0; j < 4; ++j) {
                const int shift = min(t_exp - floor_log2(row_scale[r + j]), 40);
                const uint8_t code = codes[r + j][c];
                packed |= uint32_t(shift_code(code, decoded[code], shift, a.format)) << (8 * j);
            }
            *reinterpret_cast<uint32_t*>(a.out_codes + (c0 + c) * a.rows + r0 + r) = packed;
        }
    } else {
        for (int i = threadIdx.x; i < tile * tile; i += threads) {
            const int c = i / tile, r = i % tile;
            if (r >= rows_here || c >= cols_here) continue;
            const int shift = min(t_exp - floor_log2(row_scale[r]), 40);
            const uint8_t code = codes[r][c];
            a.out_codes[(c0 + c) * a.rows + r0 + r] =
                shift_code(code, decoded[code], shift, a.format);
        }
    }
    const int64_t row_groups = (a.rows + tile - 1) / tile;
    for (int c = threadIdx.x; c < cols_here; c += threads)
        a.out_scale_inv[(c0 + c) * row_groups + rb] = t;
}

} // namespace

void transpose_scaling_aware(const ScalingAwareTransposeArgs& a, cudaStream_t stream) {
    const int64_t tiles = ((a.rows + tile - 1) / tile) * ((a.cols + tile - 1) / tile);
    if (tiles == 0) return;
    scaling_aware_transpose_kernel<<<unsigned(tiles), threads, 0, stream>>>(a);
    OCTET_CUDA_CHECK(cudaGetLastError());
}

} // namespace octet::cuda
