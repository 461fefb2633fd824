// Quantization kernels of the FP8 layers' x and dy (see quantize.h): kernels first, then
// launchers.
#include "cuda/quantize.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "cuda/activation.cuh"
#include "cuda/bf16.cuh"
#include "cuda/check.h"
#include "cuda/launch.cuh"
#include "cuda/quantize_quad.cuh"
#include "cuda/reduce.cuh"
#include "numerics/scaling.h"

namespace octet::cuda {
namespace {

// The finite amax of x[0, n), merged into *amax_bits: 16-byte loads where x is aligned
// (`vectors`), the last n % (16 / sizeof(T)) one by one; a grid-stride loop and one atomic per
// block (per warp, tens of thousands would meet on one word).
template <typename T>
__global__ void tensor_amax_kernel(const T* x, int64_t n, bool vectors, uint32_t* amax_bits) {
    constexpr int per_load = 16 / sizeof(T);
    float amax = 0.0f;
    const int64_t stride = int64_t(gridDim.x) * blockDim.x,
                  first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t loads = vectors ? n / per_load : 0;
    for (int64_t i = first; i < loads; i += stride) {
        const uint4 raw = reinterpret_cast<const uint4*>(x)[i];
        const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int j = 0; j < per_load; ++j) amax = finite_amax(amax, load_as(v + j));
    }
    for (int64_t i = loads * per_load + first; i < n; i += stride)
        amax = finite_amax(amax, load_as(x + i));
    amax = block_max(amax);
    if (threadIdx.x == 0) atomicMax(amax_bits, __float_as_uint(amax));
}

// The same for a source (see TensorSource below) of rows whose length is a multiple of 4, a block
// per row (grid-stride), a thread per quad of it.
template <typename Source>
__global__ void source_amax_kernel(Source src, int64_t rows, int64_t cols, uint32_t* amax_bits) {
    float amax = 0.0f;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
        for (int64_t c = 4 * int64_t(threadIdx.x); c < cols; c += 4 * int64_t(blockDim.x))
            amax = finite_amax4(amax, float_quad(src.bits(src.load(r, c, 4), c)));
    amax = block_max(amax);
    if (threadIdx.x == 0) atomicMax(amax_bits, __float_as_uint(amax));
}

// Both orientations in groups of G (quantize.h), a 128 × 128 tile at a time through shared
// memory, by two kernels: one for FP32 values, one for BF16 values (a BF16 tensor, or an
// activation's output computed from its BF16 inputs, GeluSource and the others below, so that
// output is never written: at 1.3B (blockwise, H100) GELU's two kernels took 5.7 ms a step, the
// fused loads and arithmetic add 3.4 ms to the quantization). Each is described where it is
// defined. Measured on an H100 at 16384 × 4096 (`octet bench quant`): 76-80% of copy bandwidth
// from BF16, 77-79% from FP32. Tried for BF16 values and slower or no faster:
// - a thread per row (128 of them) and one per column (the others) of a tile staged as floats,
//   blocks persistent with the next tile in registers: 63-70%, bound by the long chain of 128
//   values a thread and the scale rule's divisions;
// - each thread keeping 16 rows × 4 columns in registers, row groups reduced across lanes by
//   shuffles and column groups through shared memory: 59-65%;
// - the tile copied into shared memory by cp.async (no registers held in flight, three blocks an
//   SM): 76-80%, no faster than the loads into registers.
constexpr int both_tile = 128, both_threads = 256, both_warps = both_threads / 32;
constexpr int both_words = both_tile / 4; // codes of a group, four to a word
constexpr int both_blocks_per_sm = 2;

struct BothTiles {
    // Rows of 132 floats: 16-byte aligned for the row threads' 16-byte reads, which a quarter
    // warp (8 rows) then spreads over all banks, as it does the column threads' 4-byte reads.
    float value[both_tile][both_tile + 4];
    // Codes by group (row, or column for codes_t), a padded row keeping each store to a word of
    // 32 groups free of bank conflicts.
    uint32_t codes[both_tile][both_words + 1];
    uint32_t codes_t[both_tile][both_words + 1];
};

// The 8 bytes of four BF16 values.
__device__ __forceinline__ uint2 bf16_bits(const __nv_bfloat16* p) {
    return *reinterpret_cast<const uint2*>(p);
}

// What the one-pass kernels read, a quad of values at a time, as a source type with:
// - Raw, a quad as loaded, and `prefetch`: whether blocks load their next tile into registers
//   while they quantize the current one (rows of whole BF16 quads: Raw is then their 8 bytes,
//   half the registers of a float4);
// - load(row, col, left): the values col … col + 3 of row, `left` = cols − col > 0 of them in
//   the tensor (zeros past it);
// - bits(raw, col): their BF16 bits (sources of BF16 values), or widen(raw): their FP32 values
//   (FP32 tensors).
// TensorSource reads x itself: one load where rows are whole quads (`quads`), else value by value.
template <bool quads, typename T>
struct TensorSource {
    const T* x;
    int64_t cols;
    using Raw = float4;
    static constexpr bool prefetch = false;
    __device__ float4 load(int64_t row, int64_t col, int left) const {
        const T* p = x + row * cols + col;
        if constexpr (quads) {
            return load_quad(p, 0);
        } else {
            float4 v = make_float4(load_as(p), 0.0f, 0.0f, 0.0f);
            if (left > 1) v.y = load_as(p + 1);
            if (left > 2) v.z = load_as(p + 2);
            if (left > 3) v.w = load_as(p + 3);
            return v;
        }
    }
    __device__ float4 widen(float4 v) const { return v; }
    // Exact for T = BF16, the only T whose bits are asked for.
    __device__ uint2 bits(float4 v, int64_t) const { return bf16_quad(v); }
};

template <>
struct TensorSource<true, __nv_bfloat16> {
    const __nv_bfloat16* x;
    int64_t cols;
    using Raw = uint2;
    static constexpr bool prefetch = true;
    __device__ uint2 load(int64_t row, int64_t col, int) const {
        return bf16_bits(x + row * cols + col);
    }
    __device__ uint2 bits(uint2 raw, int64_t) const { return raw; }
};

// FP32 values go through the FP32 kernel below, BF16 ones through the BF16 kernel.
template <typename Source>
constexpr bool fp32_source = std::is_same_v<Source, TensorSource<true, float>> ||
                             std::is_same_v<Source, TensorSource<false, float>>;

// The sources of quantizes_as_computed(): an activation's output from its BF16 inputs, as the
// activation stores it (rounded to BF16). Rows of whole quads.

// GELU's input is loaded as a BF16 tensor is; only its bits differ.
struct GeluSource : TensorSource<true, __nv_bfloat16> {
    __device__ uint2 bits(uint2 raw, int64_t) const {
        const float4 v = float_quad(raw);
        return bf16_quad(make_float4(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w)));
    }
};

// f(a, b) of two inputs' values at one offset: row · pitch + col of a and of b. Raw: a's quad,
// then b's.
template <typename F>
struct PairSource {
    const __nv_bfloat16 *a, *b;
    int64_t pitch;
    using Raw = uint4;
    static constexpr bool prefetch = true;
    __device__ uint4 load(int64_t row, int64_t col, int) const {
        const int64_t at = row * pitch + col;
        const uint2 u = bf16_bits(a + at), v = bf16_bits(b + at);
        return make_uint4(u.x, u.y, v.x, v.y);
    }
    __device__ uint2 bits(uint4 raw, int64_t) const {
        const float4 u = float_quad(make_uint2(raw.x, raw.y)),
                     v = float_quad(make_uint2(raw.z, raw.w));
        const F f;
        return bf16_quad(make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w)));
    }
};

// GELU's gradient from x and d_out; SwiGLU from the gate and up halves of x's rows.
using GeluBackwardSource = PairSource<GeluGrad>;
using SwigluSource = PairSource<Swiglu>;

// The gradient's columns [0, h) are the gate's, [h, 2h) up's (h = cols / 2, whole quads), both
// from the gate and d_out values of column col mod h, the gate's also from up's (not loaded for
// up's columns). Three quads a load: not prefetched, which would hold 96 registers.
struct SwigluBackwardSource {
    const __nv_bfloat16 *x, *d_out;
    int64_t h;
    struct Raw {
        uint2 g, u, d;
    };
    static constexpr bool prefetch = false;
    __device__ Raw load(int64_t row, int64_t col, int) const {
        const int64_t j = col < h ? col : col - h;
        const __nv_bfloat16* gate = x + row * 2 * h + j;
        return {bf16_bits(gate), col < h ? bf16_bits(gate + h) : uint2{},
                bf16_bits(d_out + row * h + j)};
    }
    __device__ uint2 bits(const Raw& raw, int64_t col) const {
        const float4 g = float_quad(raw.g), u = float_quad(raw.u), d = float_quad(raw.d);
        if (col < h)
            return bf16_quad(
                make_float4(swiglu_grad_gate(g.x, u.x, d.x), swiglu_grad_gate(g.y, u.y, d.y),
                            swiglu_grad_gate(g.z, u.z, d.z), swiglu_grad_gate(g.w, u.w, d.w)));
        return bf16_quad(make_float4(swiglu_grad_up(g.x, d.x), swiglu_grad_up(g.y, d.y),
                                     swiglu_grad_up(g.z, d.z), swiglu_grad_up(g.w, d.w)));
    }
};

// A group's scale from its amax: by the plan's rule, or (two-level plans, `global` > 0) MOSS's
// local scale under the tensor's global scale s, whose scale_inv is then the local level's E8M0
// value (what its grid holds), not 1 / scale.
struct GroupScaler {
    ScaleRule rule;
    Format format;
    float global; // two-level: s; 0 for the rule
    __device__ BlockScale operator()(float amax) const {
        if (global > 0.0f) {
            const TwoLevelScale ts = moss_group_scale(amax / format_max(format), global);
            return {ts.scale, ts.local_scale_inv};
        }
        return rule(amax);
    }
};

// The 128 values of a tile's row (or column), values(q) giving values 4q … 4q + 3, quantized in
// groups of G into 32 words of codes (words[q]), group j's scale_inv handed to store(j, ·); their
// sum, in order, where `sums` (compiled away otherwise). A group's amax is a max of |v| that
// propagates NaN: finite exactly where every value is, else the group goes through finite_amax
// and the per-value casts instead.
template <int G, bool sums, typename Values, typename Store>
__device__ float quantize_run_128(Values values, const GroupScaler& scaler, uint32_t* words,
                                  Store store) {
    constexpr int words_per_group = G / 4;
    float sum = 0.0f;
    // Group by group, not unrolled: four unrolled copies of a group's body (G = 32) ran at 45% of
    // copy bandwidth, one at 70% (H100; unrolling all groups' amaxes, then all casts, 37%).
#pragma unroll 1
    for (int j = 0; j < both_words / words_per_group; ++j) {
        const int q0 = j * words_per_group, q1 = q0 + words_per_group;
        float amax = 0.0f;
#pragma unroll 8
        for (int q = q0; q < q1; ++q) {
            const float4 v = values(q);
            amax = max_abs_nan4(amax, v);
            if constexpr (sums) sum = sum + v.x + v.y + v.z + v.w;
        }
        const bool finite = amax <= 3.4028235e38f; // false for NaN and +Inf
        if (!finite) {
            amax = 0.0f;
            for (int q = q0; q < q1; ++q) amax = finite_amax4(amax, values(q));
        }
        const BlockScale s = scaler(amax);
        // A loop per path: choosing the cast inside one loop made the kernel 17% slower (H100).
        if (finite) {
#pragma unroll 8
            for (int q = q0; q < q1; ++q) {
                const float4 v = values(q);
                words[q] = cast_finite_packed(v.x, v.y, v.z, v.w, s.scale, scaler.format);
            }
        } else {
            for (int q = q0; q < q1; ++q) {
                const float4 v = values(q);
                words[q] = cast_scaled_packed(v.x, v.y, v.z, v.w, s.scale, scaler.format);
            }
        }
        store(j, s.scale_inv);
    }
    return sum;
}

// A word of four codes at `out`, or those of its bytes inside the `n` that remain.
__device__ __forceinline__ void store_codes(uint8_t* out, uint32_t word, int64_t n, bool whole) {
    if (whole) {
        *reinterpret_cast<uint32_t*>(out) = word;
        return;
    }
    for (int j = 0; j < 4 && j < n; ++j) out[j] = uint8_t(word >> (8 * j));
}

// The tiles of x in order, columns fastest: tile t holds rows [128 (t / tiles_x), …) and
// columns [128 (t % tiles_x), …).
struct BothTileGrid {
    unsigned tiles_x, tiles_y, tiles;
};

// Where tile t lies, and how much of it is inside the tensor.
struct BothTile {
    unsigned x, y;
    int64_t r0, c0;
    int rows, cols; // 1 … 128
    __device__ BothTile(unsigned t, const BothTileGrid& grid, const BothOrientationsArgs& a)
        : x(t % grid.tiles_x), y(t / grid.tiles_x), r0(int64_t(y) * both_tile),
          c0(int64_t(x) * both_tile), rows(int(min(a.rows - r0, int64_t(both_tile)))),
          cols(int(min(a.cols - c0, int64_t(both_tile)))) {}
};

// Two-level plans: s from the tensor's finite amax, as the maximum of every group's
// amax / fmt_max (division rounds monotonically, so the two agree); block 0 stores it. 0 for
// one-level plans.
__device__ float two_level_global(const BothOrientationsArgs& a) {
    if (!a.tensor_amax) return 0.0f;
    const float global = moss_global_scale(__uint_as_float(*a.tensor_amax) / format_max(a.format));
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        *a.global_scale_inv = global;
        *a.global_scale_inv_t = global;
    }
    return global;
}

// The block's dynamic shared memory (the launch's size, at least sizeof(T)) as a T.
template <typename T>
__device__ T& dynamic_shared() {
    extern __shared__ uint4 dynamic_shared_memory[];
    return *reinterpret_cast<T*>(dynamic_shared_memory);
}

// The row-wise and the column-wise copies' group scalers.
struct OrientationScalers {
    GroupScaler rows, columns;
};

__device__ OrientationScalers orientation_scalers(const BothOrientationsArgs& a) {
    const float global = two_level_global(a);
    return {{a.rule, a.format, global}, {a.rule_t, a.format_t, global}};
}

// Thread (warp, lane) loads quad `lane` of the tile's rows warp, warp + 8, …: a warp reads
// whole rows.
constexpr int both_loads = both_tile / both_warps;

template <typename Source>
__device__ void load_both_tile(const Source& src, typename Source::Raw (&v)[both_loads],
                               const BothTile& b) {
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
    const int left = b.cols - 4 * lane;
#pragma unroll
    for (int k = 0; k < both_loads; ++k)
        v[k] = left > 0 && warp + both_warps * k < b.rows
                   ? src.load(b.r0 + warp + both_warps * k, b.c0 + 4 * lane, left)
                   : typename Source::Raw{};
}

// FP32 values: a block takes one tile and stages it in shared memory as floats, thread t of the
// first 128 quantizes the tile's row t (128 / G groups) while thread t of the others quantizes
// its column t, each writing its codes into a shared tile of its orientation; then the block
// stores both tiles row by row, 128 contiguous bytes per warp instruction (77-79% of copy
// bandwidth at 16384 × 4096, H100; persistent blocks with the next tile in flight were slower).
// Each thread's addresses are one base and a constant stride: the index arithmetic per load and
// store, 64-bit and per element before, was most of the kernel's instructions.
template <int G, bool sums, typename Source>
__global__ void __launch_bounds__(both_threads, both_blocks_per_sm)
    quantize_both_fp32_kernel(Source src, BothOrientationsArgs a, BothTileGrid grid) {
    BothTiles& tile = dynamic_shared<BothTiles>();
    const auto [row_scaler, column_scaler] = orientation_scalers(a);
    const int64_t grid_cols = (a.cols + G - 1) / G, grid_cols_t = (a.rows + G - 1) / G;
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
    const BothTile b(blockIdx.x, grid, a);
    {
        typename Source::Raw v[both_loads];
        load_both_tile(src, v, b);
#pragma unroll
        for (int k = 0; k < both_loads; ++k)
            *reinterpret_cast<float4*>(&tile.value[warp + both_warps * k][4 * lane]) =
                src.widen(v[k]);
    }
    __syncthreads();
    const int g = int(threadIdx.x) % both_tile;
    if (threadIdx.x < both_tile) { // warp-uniform: warps 0-3 take rows, 4-7 columns
        if (g < b.rows) {
            float* scale_inv = a.scale_inv + (b.r0 + g) * grid_cols + b.c0 / G;
            const int groups = (b.cols + G - 1) / G;
            quantize_run_128<G, false>(
                [&](int w) { return *reinterpret_cast<const float4*>(&tile.value[g][4 * w]); },
                row_scaler, tile.codes[g],
                [&](int j, float s) {
                    if (j < groups) scale_inv[j] = s;
                });
        }
    } else if (g < b.cols) {
        float* scale_inv = a.scale_inv_t + (b.c0 + g) * grid_cols_t + b.r0 / G;
        const int groups = (b.rows + G - 1) / G;
        const float sum = quantize_run_128<G, sums>(
            [&](int w) {
                return make_float4(tile.value[4 * w][g], tile.value[4 * w + 1][g],
                                   tile.value[4 * w + 2][g], tile.value[4 * w + 3][g]);
            },
            column_scaler, tile.codes_t[g],
            [&](int j, float s) {
                if (j < groups) scale_inv[j] = s;
            });
        if constexpr (sums) a.column_sums[int64_t(b.y) * a.cols + b.c0 + g] = sum;
    }
    __syncthreads();
    // Warp w stores groups w, w + 8, … of each orientation, lane l word l.
    const int row_left = b.cols - 4 * lane, col_left = b.rows - 4 * lane;
    uint8_t* codes = a.codes + (b.r0 + warp) * a.cols + b.c0 + 4 * lane;
    uint8_t* codes_t = a.codes_t + (b.c0 + warp) * a.rows + b.r0 + 4 * lane;
    const int64_t stride = both_warps * a.cols, stride_t = both_warps * a.rows;
    const bool whole_rows = a.cols % 4 == 0, whole_cols = a.rows % 4 == 0;
#pragma unroll 4
    for (int k = 0; k < both_loads; ++k) {
        const int group = warp + both_warps * k;
        if (group < b.rows && row_left > 0)
            store_codes(codes + k * stride, tile.codes[group][lane], row_left, whole_rows);
        if (group < b.cols && col_left > 0)
            store_codes(codes_t + k * stride_t, tile.codes_t[group][lane], col_left, whole_cols);
    }
}

// BF16 values: blocks are persistent (two an SM) and stage each tile in shared memory as its
// BF16 bits, 32 KiB, in one of two buffers, so that one barrier a tile suffices; the next tile's
// loads are in flight while the block quantizes the current one. Every thread takes part in both
// orientations, from shared memory:
// - rows: 16 threads a row, each with a chunk of 8 values (one 16-byte read), the group's amax
//   over 4 or 16 lanes by shuffles, 8 codes in one 8-byte store;
// - columns: 4 threads a pair of columns, each with 32 rows of both (32 word reads), G = 128's
//   amax over the 4 lanes by shuffles, 32 codes of each column in two 16-byte stores;
// amaxes as BF16 pairs (max.NaN.bf16x2 of |word|: exact, two values an instruction). ncu (H100):
// about 65 M warp instructions at 16384 × 4096, issued at 0.57 a cycle per scheduler with four
// warps each (126 registers); fixed-latency dependencies are the largest stall.
constexpr int bf16_chunks = both_tile / 8; // 16-byte chunks of 8 values in a tile's row

struct Bf16BothTiles {
    uint4 chunk[2][both_tile][bf16_chunks];
};

// Where chunk c of row r of a tile lies in its row: swizzled so that a quarter warp's 16-byte
// reads of 8 chunks of one row, and a warp's word reads of 8 columns' words in rows r, r + 32,
// r + 64 and r + 96, each fall on distinct banks.
__device__ __forceinline__ int swizzled_chunk(int r, int c) {
    return c ^ ((r ^ (r >> 4)) & 15);
}

// |each half| of a BF16 pair, and the pairs' max.NaN (NaN wherever either half is NaN).
__device__ __forceinline__ uint32_t abs_bf16x2(uint32_t w) {
    return w & 0x7FFF7FFFu;
}

__device__ __forceinline__ uint32_t max_nan_bf16x2(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("max.NaN.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

__device__ __forceinline__ float low_half(uint32_t w) {
    return __uint_as_float(w << 16);
}

__device__ __forceinline__ float high_half(uint32_t w) {
    return __uint_as_float(w & 0xFFFF0000u);
}

__device__ __forceinline__ float max_of_halves(uint32_t w) {
    return max_nan(low_half(w), high_half(w));
}

// The max (NaN-propagating) over `lanes` adjacent lanes (a power of two), in every one of them.
template <int lanes>
__device__ __forceinline__ float lanes_max(float v) {
#pragma unroll
    for (int o = 1; o < lanes; o *= 2) v = max_nan(v, __shfl_xor_sync(~0u, v, o));
    return v;
}

// Whether a group's NaN-propagating max is finite: false for NaN and +Inf.
__device__ __forceinline__ bool finite_max(float group_max) {
    return group_max <= 3.4028235e38f;
}

// A group's amax from its NaN-propagating max over `lanes` lanes: that max where it is finite,
// else the finite amax of each lane's values (`finite_part()`) over the same lanes. Warps with
// no such group skip the second reduction, which all lanes of a warp must join.
template <int lanes, typename FinitePart>
__device__ __forceinline__ float group_amax(float group_max, FinitePart finite_part) {
    if (__any_sync(~0u, !finite_max(group_max))) {
        const float f = lanes_max<lanes>(finite_part());
        if (!finite_max(group_max)) return f;
    }
    return group_max;
}

// Four values' codes: the finite path where the group is finite, else the codec value by value
// (out of line: the kernel inlines this dozens of times).
__device__ __forceinline__ uint32_t cast_group_packed(float a, float b, float c, float d,
                                                      float scale, Format format, bool finite) {
    return finite ? cast_finite_packed(a, b, c, d, scale, format)
                  : cast_each_packed(a, b, c, d, scale, format);
}

// The scales of each lane's n groups, whose amaxes every one of the `lanes` adjacent lanes that
// share those groups holds: the lanes split the n rules among them (the FP32 rule's two
// divisions, run by every lane, were most of the kernel's instructions at G = 128), then
// scale(k) hands group k's to all of them.
template <int n, int lanes>
struct SharedScales {
    static constexpr int spread = lanes < n ? lanes : n; // lanes that split one set of rules
    static constexpr int runs = n / spread;              // rules a lane runs
    BlockScale s[runs];
    __device__ SharedScales(const float (&amax)[n], const GroupScaler& scaler) {
        const int part = int(threadIdx.x % spread);
#pragma unroll
        for (int e = 0; e < runs; ++e) s[e] = scaler(pick(amax, part + spread * e));
    }
    // v[i] by a tree of selects on i's bits: indexed directly, v would live in local memory.
    static __device__ float pick(const float (&v)[n], int i) {
        float t[n];
#pragma unroll
        for (int k = 0; k < n; ++k) t[k] = v[k];
#pragma unroll
        for (int half = n / 2; half > 0; half /= 2)
#pragma unroll
            for (int k = 0; k < half; ++k) t[k] = i & half ? t[k + half] : t[k];
        return t[0];
    }
    // Every lane of the warp calls it with the same k.
    __device__ BlockScale operator()(int k) const {
        if constexpr (spread == 1) return s[k];
        const int from = int(threadIdx.x % 32) / lanes * lanes + k % spread;
        return {__shfl_sync(~0u, s[k / spread].scale, from),
                __shfl_sync(~0u, s[k / spread].scale_inv, from)};
    }
};

// The first n > 0 of the 32 codes lo, hi (word j: codes 4j … 4j + 3) at out, word by word
// (`whole`: out aligned and n a multiple of 4) or byte by byte. Out of line: only tensors whose
// rows are not whole 16-byte runs of codes take it.
__device__ __noinline__ void store_code_words(uint8_t* out, uint4 lo, uint4 hi, int n, bool whole) {
    const uint32_t words[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
    for (int j = 0; j < 8 && 4 * j < n; ++j) store_codes(out + 4 * j, words[j], n - 4 * j, whole);
}

// A row pass's 8 codes (n > 0 of them in the tensor): one 8-byte store where `vectors` (out
// aligned, n ≥ 8).
__device__ __forceinline__ void store_codes_8(uint8_t* out, uint2 codes, int n, bool vectors,
                                              bool whole) {
    if (vectors) {
        *reinterpret_cast<uint2*>(out) = codes;
        return;
    }
    store_codes(out, codes.x, n, whole);
    if (n > 4) store_codes(out + 4, codes.y, n - 4, whole);
}

// A column pass's 32 codes: 16-byte stores where `vectors` (out aligned, n a multiple of 16).
__device__ __forceinline__ void store_codes_32(uint8_t* out, uint4 lo, uint4 hi, int n,
                                               bool vectors, bool whole) {
    if (!vectors) return store_code_words(out, lo, hi, min(n, 32), whole);
    *reinterpret_cast<uint4*>(out) = lo;
    if (n > 16) *reinterpret_cast<uint4*>(out + 16) = hi;
}

using Bf16Tile = uint4[both_tile][bf16_chunks];

// The row-wise copy of the staged tile: thread (warp, lane) quantizes chunk lane % 16 of rows
// 16 warp + 2k + lane / 16, k < 8: the groups' amaxes, their scales, then the codes, reading
// each chunk from shared memory again (holding all eight would take 32 more registers).
template <int G>
__device__ void quantize_bf16_rows(const Bf16Tile& tile, const BothTile& b,
                                   const BothOrientationsArgs& a, const GroupScaler& scaler) {
    constexpr int lanes = G / 8;
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32), c = lane % 16;
    const auto row = [&](int k) { return 16 * warp + 2 * k + lane / 16; };
    const auto chunk = [&](int k) { return tile[row(k)][swizzled_chunk(row(k), c)]; };
    float amax[8];
    unsigned finite = 0; // bit k: group k has no NaN or Inf
#pragma unroll
    for (int k = 0; k < 8; ++k) {
        const uint4 w = chunk(k);
        const float group_max = lanes_max<lanes>(
            max_of_halves(max_nan_bf16x2(max_nan_bf16x2(abs_bf16x2(w.x), abs_bf16x2(w.y)),
                                         max_nan_bf16x2(abs_bf16x2(w.z), abs_bf16x2(w.w)))));
        if (finite_max(group_max)) finite |= 1u << k;
        amax[k] = group_amax<lanes>(group_max, [&] {
            return finite_amax4(finite_amax4(0.0f, float_quad(make_uint2(w.x, w.y))),
                                float_quad(make_uint2(w.z, w.w)));
        });
    }
    const SharedScales<8, lanes> scales(amax, scaler);
    const int left = b.cols - 8 * c; // values of the chunk inside the tensor
    const int64_t grid_cols = (a.cols + G - 1) / G;
    const bool vectors = a.cols % 8 == 0, whole = a.cols % 4 == 0;
    // Not unrolled: eight copies of the casts overflowed the instruction cache.
#pragma unroll 1
    for (int k = 0; k < 8; ++k) {
        const BlockScale s = scales(k);
        const uint4 w = chunk(k);
        const float4 lo = float_quad(make_uint2(w.x, w.y)), hi = float_quad(make_uint2(w.z, w.w));
        const bool group_finite = finite >> k & 1;
        const uint2 codes = make_uint2(
            cast_group_packed(lo.x, lo.y, lo.z, lo.w, s.scale, scaler.format, group_finite),
            cast_group_packed(hi.x, hi.y, hi.z, hi.w, s.scale, scaler.format, group_finite));
        const int r = row(k);
        if (r < b.rows && left > 0) {
            store_codes_8(a.codes + (b.r0 + r) * a.cols + b.c0 + 8 * c, codes, left, vectors,
                          whole);
            if (c % lanes == 0)
                a.scale_inv[(b.r0 + r) * grid_cols + (b.c0 + 8 * c) / G] = s.scale_inv;
        }
    }
}

// The column-wise copy: thread (warp, lane) quantizes columns 2p and 2p + 1 (p = 8 warp +
// lane / 4) in rows 32q … 32q + 31 (q = lane % 4), one group of 32 or a quarter of one of 128;
// with `sums`, the columns' sums over the tile's rows, each thread's 32 in order, then the
// quarters' pairwise.
template <int G, bool sums>
__device__ void quantize_bf16_columns(const Bf16Tile& tile, const BothTile& b,
                                      const BothOrientationsArgs& a, const GroupScaler& scaler) {
    constexpr int lanes = G / 32;
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
    const int p = 8 * warp + lane / 4, q = lane % 4;
    uint32_t w[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) {
        const int r = 32 * q + i;
        w[i] = reinterpret_cast<const uint32_t*>(&tile[r][swizzled_chunk(r, p / 4)])[p % 4];
    }
    uint32_t m[4]; // four chains of the columns' magnitudes, then their max in m[0]
#pragma unroll
    for (int i = 0; i < 4; ++i) m[i] = abs_bf16x2(w[i]);
#pragma unroll
    for (int i = 4; i < 32; ++i) m[i % 4] = max_nan_bf16x2(m[i % 4], abs_bf16x2(w[i]));
    m[0] = max_nan_bf16x2(max_nan_bf16x2(m[0], m[1]), max_nan_bf16x2(m[2], m[3]));
    // Column 2p + h is the low (h = 0) or high half of each word.
    const auto value = [&](int h, int i) { return h ? high_half(w[i]) : low_half(w[i]); };
    float amax[2];
    bool finite[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const float group_max = lanes_max<lanes>(h ? high_half(m[0]) : low_half(m[0]));
        finite[h] = finite_max(group_max);
        amax[h] = group_amax<lanes>(group_max, [&] {
            float f = 0.0f;
            for (int i = 0; i < 32; ++i) f = finite_amax(f, value(h, i));
            return f;
        });
    }
    const SharedScales<2, lanes> scales(amax, scaler);
    const int64_t grid_cols_t = (a.rows + G - 1) / G;
    const int left = b.rows - 32 * q; // rows of the run inside the tensor
    const bool vectors = a.rows % 16 == 0, whole = a.rows % 4 == 0;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const BlockScale s = scales(h);
        uint32_t codes[8];
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float v0 = value(h, 4 * j), v1 = value(h, 4 * j + 1), v2 = value(h, 4 * j + 2),
                        v3 = value(h, 4 * j + 3);
            codes[j] = cast_group_packed(v0, v1, v2, v3, s.scale, scaler.format, finite[h]);
            if constexpr (sums) sum = sum + v0 + v1 + v2 + v3;
        }
        const int col = 2 * p + h;
        if constexpr (sums) {
            sum += __shfl_xor_sync(~0u, sum, 1);
            sum += __shfl_xor_sync(~0u, sum, 2);
            if (q == 0 && col < b.cols) a.column_sums[int64_t(b.y) * a.cols + b.c0 + col] = sum;
        }
        if (col < b.cols && left > 0) {
            store_codes_32(a.codes_t + (b.c0 + col) * a.rows + b.r0 + 32 * q,
                           make_uint4(codes[0], codes[1], codes[2], codes[3]),
                           make_uint4(codes[4], codes[5], codes[6], codes[7]), left, vectors,
                           whole);
            if (q % lanes == 0)
                a.scale_inv_t[(b.c0 + col) * grid_cols_t + (b.r0 + 32 * q) / G] = s.scale_inv;
        }
    }
}

template <int G, bool sums, typename Source>
__global__ void __launch_bounds__(both_threads, both_blocks_per_sm)
    quantize_both_bf16_kernel(Source src, BothOrientationsArgs a, BothTileGrid grid) {
    Bf16BothTiles& tiles = dynamic_shared<Bf16BothTiles>();
    const auto [row_scaler, column_scaler] = orientation_scalers(a);
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
    typename Source::Raw v[both_loads]; // the next tile, all in flight at once
    const unsigned step = gridDim.x;
    if (Source::prefetch) load_both_tile(src, v, BothTile(blockIdx.x, grid, a));
    int buffer = 0;
    for (unsigned t = blockIdx.x; t < grid.tiles; t += step, buffer ^= 1) {
        const BothTile b(t, grid, a);
        if constexpr (!Source::prefetch) load_both_tile(src, v, b);
        Bf16Tile& tile = tiles.chunk[buffer];
#pragma unroll
        for (int k = 0; k < both_loads; ++k) {
            const int r = warp + both_warps * k;
            reinterpret_cast<uint2*>(&tile[r][swizzled_chunk(r, lane / 2)])[lane % 2] =
                src.bits(v[k], b.c0 + 4 * lane);
        }
        // The other buffer's readers passed this barrier after their last reads of it.
        __syncthreads();
        if (Source::prefetch && t + step < grid.tiles)
            load_both_tile(src, v, BothTile(t + step, grid, a));
        quantize_bf16_rows<G>(tile, b, a, row_scaler);
        quantize_bf16_columns<G, sums>(tile, b, a, column_scaler);
    }
}

template <int G, bool sums, typename Source>
void launch_quantize_both_kernel(const Source& src, const BothOrientationsArgs& a,
                                 cudaStream_t stream) {
    constexpr bool fp32 = fp32_source<Source>;
    const auto kernel = [] {
        if constexpr (fp32)
            return quantize_both_fp32_kernel<G, sums, Source>;
        else
            return quantize_both_bf16_kernel<G, sums, Source>;
    }();
    constexpr int smem = fp32 ? int(sizeof(BothTiles)) : int(sizeof(Bf16BothTiles));
    // Beyond the 48 KiB a block gets unasked: once per kernel.
    static const bool opted_in = [&] {
        OCTET_CUDA_CHECK(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        return true;
    }();
    (void)opted_in;
    static const int sm_count = current_device_sm_count();
    const int64_t tiles_x = blocks_for(a.cols, both_tile), tiles_y = blocks_for(a.rows, both_tile);
    if (tiles_x * tiles_y > int64_t(INT32_MAX))
        throw Error("quantize_both: " + std::to_string(a.rows) + " x " + std::to_string(a.cols) +
                    " has more 128 x 128 tiles than one launch indexes");
    const BothTileGrid grid{unsigned(tiles_x), unsigned(tiles_y), unsigned(tiles_x * tiles_y)};
    // Persistent blocks where they prefetch; else a block a tile, whose loads the blocks
    // resident beside it overlap.
    const int64_t blocks =
        Source::prefetch ? std::min<int64_t>(grid.tiles, int64_t(both_blocks_per_sm) * sm_count)
                         : grid.tiles;
    kernel<<<unsigned(blocks), both_threads, smem, stream>>>(src, a, grid);
    OCTET_CUDA_LAUNCHED();
}

// The kernel's template arguments from the arguments: the group and column sums; `with_source`
// gives the source to the launch it is handed.
template <typename WithSource>
void launch_quantize_both(const BothOrientationsArgs& a, cudaStream_t stream,
                          WithSource with_source) {
    if (a.group != 32 && a.group != 128)
        throw Error("quantize_both: groups of " + std::to_string(a.group) +
                    " (it takes 32 or 128)");
    if ((a.tensor_amax != nullptr) != (a.global_scale_inv && a.global_scale_inv_t))
        throw Error("quantize_both: a two-level tensor amax needs both global scales");
    if (a.rows <= 0 || a.cols <= 0) return;
    const auto with_sums = [&](auto group) {
        constexpr int G = decltype(group)::value;
        if (a.column_sums)
            with_source(
                [&](const auto& src) { launch_quantize_both_kernel<G, true>(src, a, stream); });
        else
            with_source(
                [&](const auto& src) { launch_quantize_both_kernel<G, false>(src, a, stream); });
    };
    if (a.group == 32)
        with_sums(std::integral_constant<int, 32>{});
    else
        with_sums(std::integral_constant<int, 128>{});
}

// x itself: read in quads where its rows are whole quads at aligned addresses.
template <typename T>
void quantize_tensor_both(const T* x, const BothOrientationsArgs& a, cudaStream_t stream) {
    const bool quads = a.cols % 4 == 0 && aligned_to(x, 4 * sizeof(T));
    launch_quantize_both(a, stream, [&](auto launch) {
        if (quads)
            launch(TensorSource<true, T>{x, a.cols});
        else
            launch(TensorSource<false, T>{x, a.cols});
    });
}

// f(the source type of s's op) for an output with `cols` columns.
template <typename F>
void with_elementwise_source(const ElementwiseSource& s, int64_t cols, F f) {
    using Op = ElementwiseSource::Op;
    switch (s.op) {
    case Op::gelu:
        return f(GeluSource{{s.x, cols}});
    case Op::gelu_backward:
        return f(GeluBackwardSource{s.x, s.d_out, cols});
    case Op::swiglu:
        return f(SwigluSource{s.x, s.x + cols, 2 * cols});
    case Op::swiglu_backward:
        return f(SwigluBackwardSource{s.x, s.d_out, cols / 2});
    }
    throw Error("quantize_both: an unknown elementwise source");
}

void require_quantizes_as_computed(const ElementwiseSource& s, int64_t rows, int64_t cols) {
    if (!quantizes_as_computed(s, rows, cols))
        throw Error("quantize_both: an activation's output of " + std::to_string(rows) + " x " +
                    std::to_string(cols) +
                    " needs rows of whole quads (of each half, for SwiGLU's gradient) at 8-byte "
                    "aligned inputs");
}

} // namespace

bool quantizes_as_computed(const ElementwiseSource& s, int64_t rows, int64_t cols) {
    using Op = ElementwiseSource::Op;
    const bool backward = s.op == Op::gelu_backward || s.op == Op::swiglu_backward;
    return rows >= 0 && cols >= 0 && s.x && aligned_to(s.x, 8) &&
           (!backward || (s.d_out && aligned_to(s.d_out, 8))) &&
           cols % (s.op == Op::swiglu_backward ? 8 : 4) == 0;
}

void tensor_finite_amax(const ElementwiseSource& source, int64_t rows, int64_t cols,
                        uint32_t* amax_bits, cudaStream_t stream) {
    require_quantizes_as_computed(source, rows, cols);
    OCTET_CUDA_CHECK(cudaMemsetAsync(amax_bits, 0, sizeof(uint32_t), stream));
    if (rows <= 0 || cols <= 0) return;
    const unsigned blocks = unsigned(std::min<int64_t>(rows, 4096));
    with_elementwise_source(source, cols, [&](const auto& src) {
        source_amax_kernel<<<blocks, elementwise_threads, 0, stream>>>(src, rows, cols, amax_bits);
        OCTET_CUDA_LAUNCHED();
    });
}

void quantize_both_orientations(const ElementwiseSource& source, const BothOrientationsArgs& a,
                                cudaStream_t stream) {
    require_quantizes_as_computed(source, a.rows, a.cols);
    launch_quantize_both(a, stream,
                         [&](auto launch) { with_elementwise_source(source, a.cols, launch); });
}

template <typename T>
void tensor_finite_amax(const T* x, int64_t n, uint32_t* amax_bits, cudaStream_t stream) {
    OCTET_CUDA_CHECK(cudaMemsetAsync(amax_bits, 0, sizeof(uint32_t), stream));
    if (n <= 0) return;
    const unsigned blocks = std::min(blocks_for(n, elementwise_threads), 4096u);
    tensor_amax_kernel<<<blocks, elementwise_threads, 0, stream>>>(x, n, aligned_to(x, 16),
                                                                   amax_bits);
    OCTET_CUDA_LAUNCHED();
}

template void tensor_finite_amax(const float*, int64_t, uint32_t*, cudaStream_t);
template void tensor_finite_amax(const __nv_bfloat16*, int64_t, uint32_t*, cudaStream_t);

void quantize_both_orientations(const float* x, const BothOrientationsArgs& a,
                                cudaStream_t stream) {
    quantize_tensor_both(x, a, stream);
}

void quantize_both_orientations(const __nv_bfloat16* x, const BothOrientationsArgs& a,
                                cudaStream_t stream) {
    quantize_tensor_both(x, a, stream);
}

} // namespace octet::cuda
