// Quantization kernels of the FP8 layers' x and dy (see quantize.h): kernels first, then
// launchers.
#include "cuda/quantize.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "common/error.h"
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

// Both orientations in groups of G (quantize.h): a block of 256 threads takes a 128 × 128 tile
// into shared memory, then thread t of the first 128 quantizes the tile's row t (128 / G groups)
// while thread t of the others quantizes its column t (groups of the transposed copy), each
// writing its codes into a shared tile of its orientation; then the block stores both tiles
// row by row, 128 contiguous bytes per warp instruction. A thread owns whole groups, so the scale
// rule runs once per group rather than once per warp instruction, and the amax costs one
// max and one multiply-add per value: the kernels that give a warp to a group are bound by
// instruction issue. From BF16 (rows of whole quads), blocks are persistent (two per SM) and
// load their next tile into registers while they quantize and store the current one: one tile a
// block, each waited for its load, then left memory idle while it computed, which held the
// kernel to 39% of copy bandwidth (70% now, H100). Two tiles in flight a block were slower
// (67%), so the loads' latency is not what bounds it. From FP32 a block takes one tile (83%;
// persistent with the next tile in flight, 79%). Also tried, slower (1x128 from BF16, H100): each
// thread keeping 16 rows × 4 columns in registers, row groups reduced across lanes by shuffles
// and column groups through shared memory, 59% (a tile a block, three blocks an SM) and 65%
// (persistent, the next tile in registers); it issued as many instructions as this kernel, with
// fewer warps an SM to hide their latency.
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

// Values c … c + 3 of row r (zeros outside the tensor) as loaded: a float4 from FP32, or BF16
// rows of whole quads kept as their 8 bytes until they are widened into the shared tile (half
// the registers for the next tile in flight); one load where rows are whole quads (`quads`),
// else value by value.
template <bool quads, typename T>
struct TileQuad {
    using Raw = float4;
    static constexpr bool prefetch = false; // whether blocks load their next tile early
    __device__ static float4 widen(float4 v) { return v; }
};

template <>
struct TileQuad<true, __nv_bfloat16> {
    using Raw = uint2;
    static constexpr bool prefetch = true;
    __device__ static float4 widen(uint2 bits) { return float_quad(bits); }
};

// Values c … c + 3 of a row at p = &row[c], `left` = cols − c > 0 of them in the tensor (zeros
// past it).
template <bool quads, typename T>
__device__ typename TileQuad<quads, T>::Raw load_tile_quad(const T* p, int left) {
    if constexpr (quads && std::is_same_v<T, __nv_bfloat16>) {
        return *reinterpret_cast<const uint2*>(p);
    } else if constexpr (quads) {
        return load_quad(p, 0);
    } else {
        float4 v = make_float4(load_as(p), 0.0f, 0.0f, 0.0f);
        if (left > 1) v.y = load_as(p + 1);
        if (left > 2) v.z = load_as(p + 2);
        if (left > 3) v.w = load_as(p + 3);
        return v;
    }
}

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

// A warp reads whole rows of a tile and writes whole rows of codes (thread (warp, lane) handles
// quad `lane` of rows warp, warp + 8, …), so each thread's addresses are one base and a
// constant stride: the index arithmetic per load and store, 64-bit and per element before, was
// most of the kernel's instructions.
template <int G, bool quads, bool sums, typename T>
__global__ void __launch_bounds__(both_threads, both_blocks_per_sm)
    quantize_both_kernel(const T* x, BothOrientationsArgs a, BothTileGrid grid) {
    extern __shared__ float4 both_smem[];
    BothTiles& tile = *reinterpret_cast<BothTiles*>(both_smem);
    // Two-level plans: s from the tensor's finite amax, as the maximum of every group's
    // amax / fmt_max (division rounds monotonically, so the two agree).
    const float global =
        a.tensor_amax ? moss_global_scale(__uint_as_float(*a.tensor_amax) / format_max(a.format))
                      : 0.0f;
    if (a.tensor_amax && blockIdx.x == 0 && threadIdx.x == 0) {
        *a.global_scale_inv = global;
        *a.global_scale_inv_t = global;
    }
    const GroupScaler row_scaler{a.rule, a.format, global},
        column_scaler{a.rule_t, a.format_t, global};
    const int64_t grid_cols = (a.cols + G - 1) / G, grid_cols_t = (a.rows + G - 1) / G;
    using Quad = TileQuad<quads, T>;
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
    constexpr int loads = both_tile / both_warps; // rows a thread loads (and stores) per tile
    using Raw = typename Quad::Raw;
    const auto load_tile = [&](Raw(&v)[loads], unsigned t) {
        const BothTile b(t, grid, a);
        const int left = b.cols - 4 * lane;
        const T* p = x + (b.r0 + warp) * a.cols + b.c0 + 4 * lane;
        const int64_t stride = both_warps * a.cols;
#pragma unroll
        for (int k = 0; k < loads; ++k)
            v[k] = left > 0 && warp + both_warps * k < b.rows
                       ? load_tile_quad<quads>(p + k * stride, left)
                       : Raw{};
    };
    // Quantizes tile t, loaded into v; once v is in shared memory, loads tile `refill` into it.
    const auto quantize_tile = [&](Raw(&v)[loads], unsigned t, unsigned refill) {
        const BothTile b(t, grid, a);
#pragma unroll
        for (int k = 0; k < loads; ++k)
            *reinterpret_cast<float4*>(&tile.value[warp + both_warps * k][4 * lane]) =
                Quad::widen(v[k]);
        __syncthreads();
        if (refill < grid.tiles) load_tile(v, refill);
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
        // Warp w stores groups w, w + 8, … of each orientation, lane l word l. The next tile's
        // first writes to the shared tiles wait at its first barrier for these reads.
        const int row_left = b.cols - 4 * lane, col_left = b.rows - 4 * lane;
        uint8_t* codes = a.codes + (b.r0 + warp) * a.cols + b.c0 + 4 * lane;
        uint8_t* codes_t = a.codes_t + (b.c0 + warp) * a.rows + b.r0 + 4 * lane;
        const int64_t stride = both_warps * a.cols, stride_t = both_warps * a.rows;
        const bool whole_rows = a.cols % 4 == 0, whole_cols = a.rows % 4 == 0;
#pragma unroll 4
        for (int k = 0; k < loads; ++k) {
            const int group = warp + both_warps * k;
            if (group < b.rows && row_left > 0)
                store_codes(codes + k * stride, tile.codes[group][lane], row_left, whole_rows);
            if (group < b.cols && col_left > 0)
                store_codes(codes_t + k * stride_t, tile.codes_t[group][lane], col_left,
                            whole_cols);
        }
    };
    Raw v[loads]; // the next tile, all in flight at once
    const unsigned step = gridDim.x;
    if (Quad::prefetch && blockIdx.x < grid.tiles) load_tile(v, blockIdx.x);
    for (unsigned t = blockIdx.x; t < grid.tiles; t += step) {
        if constexpr (!Quad::prefetch) load_tile(v, t);
        quantize_tile(v, t, Quad::prefetch ? t + step : grid.tiles);
    }
}

template <int G, bool quads, bool sums, typename T>
void launch_quantize_both_kernel(const T* x, const BothOrientationsArgs& a, cudaStream_t stream) {
    // Beyond the 48 KiB a block gets unasked: once per kernel.
    static const bool opted_in = [] {
        OCTET_CUDA_CHECK(cudaFuncSetAttribute(quantize_both_kernel<G, quads, sums, T>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              int(sizeof(BothTiles))));
        return true;
    }();
    (void)opted_in;
    static const int sm_count = current_device_sm_count();
    const int64_t tiles_x = blocks_for(a.cols, both_tile), tiles_y = blocks_for(a.rows, both_tile);
    if (tiles_x * tiles_y > int64_t(INT32_MAX))
        throw Error("quantize_both: " + std::to_string(a.rows) + " x " + std::to_string(a.cols) +
                    " has more 128 x 128 tiles than one launch indexes");
    const BothTileGrid grid{unsigned(tiles_x), unsigned(tiles_y), unsigned(tiles_x * tiles_y)};
    const int64_t blocks =
        TileQuad<quads, T>::prefetch
            ? std::min<int64_t>(grid.tiles, int64_t(both_blocks_per_sm) * sm_count)
            : grid.tiles;
    quantize_both_kernel<G, quads, sums>
        <<<unsigned(blocks), both_threads, sizeof(BothTiles), stream>>>(x, a, grid);
    OCTET_CUDA_LAUNCHED();
}

// The kernel's template arguments from the arguments: the group, whole quads, column sums.
template <typename T>
void launch_quantize_both(const T* x, const BothOrientationsArgs& a, cudaStream_t stream) {
    if (a.group != 32 && a.group != 128)
        throw Error("quantize_both: groups of " + std::to_string(a.group) +
                    " (it takes 32 or 128)");
    if ((a.tensor_amax != nullptr) != (a.global_scale_inv && a.global_scale_inv_t))
        throw Error("quantize_both: a two-level tensor amax needs both global scales");
    if (a.rows <= 0 || a.cols <= 0) return;
    const bool quads = a.cols % 4 == 0 && aligned_to(x, 4 * sizeof(T));
    const auto with_sums = [&](auto group, auto whole_quads) {
        constexpr int G = decltype(group)::value;
        constexpr bool Q = decltype(whole_quads)::value;
        if (a.column_sums)
            launch_quantize_both_kernel<G, Q, true>(x, a, stream);
        else
            launch_quantize_both_kernel<G, Q, false>(x, a, stream);
    };
    const auto with_quads = [&](auto group) {
        if (quads)
            with_sums(group, std::true_type{});
        else
            with_sums(group, std::false_type{});
    };
    if (a.group == 32)
        with_quads(std::integral_constant<int, 32>{});
    else
        with_quads(std::integral_constant<int, 128>{});
}

} // namespace

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
    launch_quantize_both(x, a, stream);
}

void quantize_both_orientations(const __nv_bfloat16* x, const BothOrientationsArgs& a,
                                cudaStream_t stream) {
    launch_quantize_both(x, a, stream);
}

} // namespace octet::cuda
