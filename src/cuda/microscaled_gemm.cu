// The microscaled GEMM (microscaled_gemm.h): Octet's warp-specialized WGMMA kernel, its tensor
// maps, shape checks and padding to TMA's 16-byte pitches.
#include "cuda/microscaled_gemm.h"

#include <cudaTypedefs.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "common/error.h"
#include "cuda/check.h"
#include "cuda/gemm_output.h"
#include "cuda/hopper.cuh"
#include "cuda/launch.cuh"

namespace octet::cuda {
namespace {

// A CTA computes a 256×128 tile of out in two waves of 128 rows; a stage of the shared-memory ring
// holds 128 of K of both operands (one 128-byte swizzle row per operand row) and their scales.
// Against 128×128 tiles, the tensor cores read half as much of b per product from shared memory
// and TMA writes a quarter less into it per product (docs/microscaled-gemm.md).
constexpr int waves = 2;
constexpr int tile_m = 128 * waves, tile_n = 128, tile_k = 128;
constexpr int consumer_threads = 256;           // two warpgroups of 64 rows (of each wave)
constexpr int threads = consumer_threads + 128; // and a producer warpgroup (one thread issues)
constexpr int a_stage_bytes = tile_m * tile_k, b_stage_bytes = tile_n * tile_k;
// Tiles are walked in bands of 2048 rows: the CTAs running at once then share a's rows and b's
// columns in L2.
constexpr int band_rows = 2048 / tile_m;
// Registers per thread after reallocation: the producer needs few, a consumer holds 3 × 64
// accumulators (the running sums of both waves and a group's partial sums) and the promotion's
// operands.
constexpr uint32_t producer_registers = 24, consumer_registers = 240;
// The epilogue stages a warpgroup's 64 rows in shared memory, 128 bytes of out per row at a time
// (64 BF16 columns or 32 FP32 ones), so that they leave in 16-byte stores of whole rows: stored
// from the WGMMA fragments, each instruction would touch eight rows. A row's padding keeps the
// fragment stores free of bank conflicts: 16 bytes for BF16 pairs (a warp's 8 rows then start 4
// banks apart), 32 for FP32 pairs (8-byte accesses go by half-warps of 4 rows, which then start 8
// banks apart).
constexpr int staged_row_bytes = 128;
constexpr int staging_pitch_bf16 = staged_row_bytes + 16,
              staging_pitch_fp32 = staged_row_bytes + 32;
constexpr int staging_bytes = 64 * staging_pitch_fp32; // one warpgroup's
constexpr int shared_capacity = 227 * 1024;            // a Hopper CTA's, at most

template <int group>
struct SharedLayout {
    static_assert(group == 32 || group == 128, "group: 32 or 128");
    static constexpr int groups_per_stage = tile_k / group;
    static constexpr int a_scale_floats = tile_m * groups_per_stage; // one stage
    static constexpr int b_scale_floats = tile_n * groups_per_stage;
    // As many stages as fit (4 at G = 128, 3 at G = 32), each with its two barriers and block
    // scale, beside the staging tiles and the 1024 bytes that align the base.
    static constexpr int stage_bytes =
        a_stage_bytes + b_stage_bytes + (a_scale_floats + b_scale_floats) * 4 + 2 * 8 + 4;
    static constexpr int stages = (shared_capacity - 1024 - 2 * staging_bytes - 8) / stage_bytes;
    static constexpr int a_offset = 0;
    static constexpr int b_offset = a_offset + stages * a_stage_bytes;
    static constexpr int a_scale_offset = b_offset + stages * b_stage_bytes;
    static constexpr int b_scale_offset = a_scale_offset + stages * a_scale_floats * 4;
    static constexpr int staging_offset = b_scale_offset + stages * b_scale_floats * 4;
    static constexpr int block_scale_offset = staging_offset + 2 * staging_bytes;
    static constexpr int barrier_offset = block_scale_offset + (stages * 4 + 7) / 8 * 8;
    static constexpr int bytes = barrier_offset + 2 * stages * 8;
    static constexpr int launch_bytes = bytes + 1024; // the base is aligned to 1024 in the kernel
    static_assert(launch_bytes <= shared_capacity, "more shared memory than a Hopper CTA has");
};

struct Params {
    const float* b_block_scales; // [k_stages][tiles_n], blocks_128x128 only
    const float* alpha;          // nullptr: 1
    void* out;
    const float* bias; // [n] or nullptr
    const float* c;    // FP32 [m, n] added times beta (out itself to accumulate), beta 0: unread
    float beta;
    int m, n;
    bool out_fp32;
    bool out_vectors; // out's rows are whole 16-byte vectors, 16-byte aligned
    int tiles_m, tiles_n, k_stages;
    // K split this many ways: split s of a tile sums stages [s·k_stages/splits,
    // (s+1)·k_stages/splits) into out + s·m·n (then FP32 partial sums, beta 0).
    int splits;
};

// The tile a CTA takes t-th: down a band of band_rows tile rows, then to the next column.
__device__ __forceinline__ void tile_at(int t, const Params& p, int& tile_row, int& tile_col) {
    const int per_band = band_rows * p.tiles_n;
    const int first_row = t / per_band * band_rows;
    const int rows = min(p.tiles_m - first_row, band_rows);
    const int r = t % per_band;
    tile_row = first_row + r % rows;
    tile_col = r / rows;
}

// The work item a CTA takes t-th: a tile, and the stages of K [k_begin, k_end) of its split.
__device__ __forceinline__ void work_at(int t, const Params& p, int& tile_row, int& tile_col,
                                        int& k_begin, int& k_end) {
    const int tiles = p.tiles_m * p.tiles_n, split = t / tiles;
    tile_at(t % tiles, p, tile_row, tile_col);
    k_begin = int(int64_t(split) * p.k_stages / p.splits);
    k_end = int(int64_t(split + 1) * p.k_stages / p.splits);
}

// A warpgroup's staged rows [r0, r0 + 64) × 128 bytes go out in 16-byte chunks: thread t takes
// chunks t, t + 128, …, so a warp writes four whole rows' 512 bytes per instruction. Chunk q of a
// thread: its place in the staging tile and in out (in: inside m × n).
constexpr int staged_chunks = 64 * staged_row_bytes / 16 / 128; // per thread

struct StagedChunk {
    int row, chunk, r, c;
    bool in;
};

template <typename T>
__device__ __forceinline__ StagedChunk staged_chunk(const Params& p, int r0, int c0, int thread,
                                                    int q) {
    constexpr int chunks_per_row = staged_row_bytes / 16;
    const int j = thread + 128 * q, row = j / chunks_per_row, chunk = j % chunks_per_row;
    const int r = r0 + row, c = c0 + chunk * int(16 / sizeof(T));
    return {row, chunk, r, c, r < p.m && c < p.n};
}

// Copies the staged rows into out from column c0, clipped to m × n. With add_old (FP32 rows of
// whole chunks), beta · old is added, old holding c's values at the chunks, loaded beforehand.
template <typename T>
__device__ __forceinline__ void copy_out_staged(const Params& p, T* out, const uint8_t* staging,
                                                int pitch, int r0, int c0, int thread,
                                                const float4 (&old)[staged_chunks], bool add_old) {
    constexpr int per_chunk = 16 / sizeof(T);
#pragma unroll
    for (int q = 0; q < staged_chunks; ++q) {
        const StagedChunk at = staged_chunk<T>(p, r0, c0, thread, q);
        if (!at.in) continue;
        uint4 staged = *reinterpret_cast<const uint4*>(staging + at.row * pitch + at.chunk * 16);
        T* o = out + int64_t(at.r) * p.n + at.c;
        if (p.out_vectors) { // n is a multiple of per_chunk: the chunk lies whole inside out
            if (add_old) {
                staged.x = __float_as_uint(__uint_as_float(staged.x) + p.beta * old[q].x);
                staged.y = __float_as_uint(__uint_as_float(staged.y) + p.beta * old[q].y);
                staged.z = __float_as_uint(__uint_as_float(staged.z) + p.beta * old[q].z);
                staged.w = __float_as_uint(__uint_as_float(staged.w) + p.beta * old[q].w);
            }
            *reinterpret_cast<uint4*>(o) = staged;
            continue;
        }
        const T* v = reinterpret_cast<const T*>(&staged);
#pragma unroll
        for (int i = 0; i < per_chunk; ++i) {
            if (at.c + i >= p.n) break;
            if constexpr (sizeof(T) == 4) // beta is 0 for BF16 output (checked on the host)
                o[i] = p.beta != 0.0f ? v[i] + p.beta * p.c[int64_t(at.r) * p.n + at.c + i] : v[i];
            else
                o[i] = v[i];
        }
    }
}

// alpha · sum + bias (+ beta · c), a warpgroup's 64 × 128 fragment of a wave whose first row is
// wave_row, into out of element type T: through the warpgroup's staging tile, 128 bytes of each
// row per round, each round between two of the warpgroup's own barriers (the first waits for the
// previous round's readers).
template <typename T>
__device__ __forceinline__ void
store_wave(const Params& p, T* out, uint8_t* staging, uint32_t barrier, const float (&sum)[64],
           float alpha, int wave_row, int tile_col, int warpgroup, int row, int col) {
    constexpr bool fp32 = sizeof(T) == 4;
    constexpr int pitch = fp32 ? staging_pitch_fp32 : staging_pitch_bf16;
    constexpr int round_cols = staged_row_bytes / sizeof(T), chunks = round_cols / 8;
    constexpr int rounds = tile_n / round_cols;
    const int thread = int(threadIdx.x % 128), local_row = row - 64 * warpgroup;
    const int r0 = wave_row + 64 * warpgroup, c0 = tile_col * tile_n;
    // beta · c: a round's values of c are loaded before it stages its values. Loaded chunk by
    // chunk as they are stored, each load would wait behind the stores before it (c may be out),
    // one trip to memory per chunk. (A whole wave's at once would spill: the other wave's sums are
    // still live.)
    const bool prefetch = fp32 && p.beta != 0.0f && p.out_vectors;
#pragma unroll
    for (int round = 0; round < rounds; ++round) {
        float4 old[staged_chunks];
#pragma unroll
        for (int q = 0; q < staged_chunks; ++q) {
            const StagedChunk at = staged_chunk<T>(p, r0, c0 + round * round_cols, thread, q);
            old[q] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (prefetch && at.in)
                old[q] = *reinterpret_cast<const float4*>(p.c + int64_t(at.r) * p.n + at.c);
        }
        hopper::named_barrier_sync(barrier, 128);
#pragma unroll
        for (int c = 0; c < chunks; ++c) {
            const int i = 4 * (round * chunks + c);
            // The thread's two columns, in rows row and row + 8.
            const int local_col = round * round_cols + 8 * c + col, out_col = c0 + local_col;
            float2 bias = make_float2(0.0f, 0.0f);
            if (p.bias) {
                if (out_col < p.n) bias.x = p.bias[out_col];
                if (out_col + 1 < p.n) bias.y = p.bias[out_col + 1];
            }
            const float2 upper = make_float2(alpha * sum[i] + bias.x, alpha * sum[i + 1] + bias.y),
                         lower =
                             make_float2(alpha * sum[i + 2] + bias.x, alpha * sum[i + 3] + bias.y);
            uint8_t* at = staging + local_row * pitch + (8 * c + col) * sizeof(T);
            if constexpr (fp32) {
                *reinterpret_cast<float2*>(at) = upper;
                *reinterpret_cast<float2*>(at + 8 * pitch) = lower;
            } else {
                *reinterpret_cast<__nv_bfloat162*>(at) = __float22bfloat162_rn(upper);
                *reinterpret_cast<__nv_bfloat162*>(at + 8 * pitch) = __float22bfloat162_rn(lower);
            }
        }
        hopper::named_barrier_sync(barrier, 128);
        copy_out_staged<T>(p, out, staging, pitch, r0, c0 + round * round_cols, thread, old,
                           prefetch);
    }
}

template <int group, Format a_format, MicroscaledB b_scaling>
__global__ void __launch_bounds__(threads, 1)
    microscaled_gemm_kernel(const __grid_constant__ CUtensorMap map_a,
                            const __grid_constant__ CUtensorMap map_b,
                            const __grid_constant__ CUtensorMap map_a_scales,
                            const __grid_constant__ CUtensorMap map_b_scales, const Params p) {
    using namespace hopper;
    using L = SharedLayout<group>;
    constexpr int groups_per_stage = L::groups_per_stage;
    constexpr uint32_t a_scale_bytes = L::a_scale_floats * 4, b_scale_bytes = L::b_scale_floats * 4;
    extern __shared__ uint8_t shared_raw[];
    const uint32_t raw = shared_address(shared_raw), skip = (1024 - (raw & 1023)) & 1023;
    uint8_t* shared = shared_raw + skip;
    const uint32_t base = raw + skip;
    const uint32_t full = base + L::barrier_offset, empty = full + L::stages * 8; // 8 B each
    float* block_scale = reinterpret_cast<float*>(shared + L::block_scale_offset);
    const int tiles = p.tiles_m * p.tiles_n, items = tiles * p.splits;

    if (threadIdx.x == 0) {
        for (int s = 0; s < L::stages; ++s) {
            mbarrier_init(full + 8 * s, 1);                      // the producer's arrive, + bytes
            mbarrier_init(empty + 8 * s, consumer_threads / 32); // one arrive per consumer warp
        }
        fence_barrier_init();
    }
    __syncthreads();

    if (threadIdx.x >= consumer_threads) {
        release_registers<producer_registers>();
        if (threadIdx.x != consumer_threads) return;
        prefetch_tensor_map(&map_a);
        prefetch_tensor_map(&map_b);
        prefetch_tensor_map(&map_a_scales);
        if constexpr (b_scaling == MicroscaledB::groups) prefetch_tensor_map(&map_b_scales);
        constexpr uint32_t stage_bytes = a_stage_bytes + b_stage_bytes + a_scale_bytes +
                                         (b_scaling == MicroscaledB::groups ? b_scale_bytes : 0);
        uint32_t pass = 0; // passes over the ring so far, across tiles: their parity is the phase
        for (int t = blockIdx.x; t < items; t += gridDim.x) {
            int tile_row, tile_col, k_begin, k_end;
            work_at(t, p, tile_row, tile_col, k_begin, k_end);
            // b's block scale for the next stage is loaded while this one waits: a load in the
            // stage's path would hold up every TMA behind it.
            const float* b_blocks = p.b_block_scales + tile_col;
            float next_block_scale = 0;
            if constexpr (b_scaling == MicroscaledB::blocks_128x128)
                next_block_scale = b_blocks[int64_t(k_begin) * p.tiles_n];
            for (int first = k_begin; first < k_end; first += L::stages, ++pass) {
                const uint32_t phase = pass & 1;
#pragma unroll
                for (int s = 0; s < L::stages; ++s) {
                    const int ks = first + s;
                    mbarrier_wait(empty + 8 * s, phase ^ 1); // a fresh barrier passes parity 1
                    const uint32_t bar = full + 8 * s;
                    // Past the end of K, the stage only passes the consumers through.
                    if (ks >= k_end) {
                        mbarrier_arrive(bar);
                        continue;
                    }
                    if constexpr (b_scaling == MicroscaledB::blocks_128x128) {
                        block_scale[s] = next_block_scale;
                        if (ks + 1 < k_end)
                            next_block_scale = b_blocks[int64_t(ks + 1) * p.tiles_n];
                    }
                    mbarrier_arrive_expect_tx(bar, stage_bytes);
                    tma_load_2d(base + L::a_offset + s * a_stage_bytes, &map_a, bar, ks * tile_k,
                                tile_row * tile_m);
                    tma_load_2d(base + L::b_offset + s * b_stage_bytes, &map_b, bar, ks * tile_k,
                                tile_col * tile_n);
                    tma_load_2d(base + L::a_scale_offset + s * a_scale_bytes, &map_a_scales, bar,
                                tile_row * tile_m, ks * groups_per_stage);
                    if constexpr (b_scaling == MicroscaledB::groups)
                        tma_load_2d(base + L::b_scale_offset + s * b_scale_bytes, &map_b_scales,
                                    bar, tile_col * tile_n, ks * groups_per_stage);
                }
            }
        }
        return;
    }

    claim_registers<consumer_registers>();
    // Uniform across the warp by construction (a shuffle from lane 0), so that the descriptors
    // derived from it live in uniform registers.
    const int warpgroup = __shfl_sync(0xffffffff, int(threadIdx.x) / 128, 0);
    const int warp = threadIdx.x % 128 / 32, lane = threadIdx.x % 32;
    const int row = warpgroup * 64 + warp * 16 + lane / 4; // and row + 8, in a wave
    const int col = 2 * (lane % 4);                        // and col + 1, each + 8j
    const float alpha = p.alpha ? *p.alpha : 1.0f;
    // Descriptors of stage 0's tiles (this warpgroup's 64 rows of a's first wave), advanced per
    // stage, wave and k.
    const uint64_t a_desc0 = k_major_sw128_descriptor(base + L::a_offset + warpgroup * 64 * tile_k);
    const uint64_t b_desc0 = k_major_sw128_descriptor(base + L::b_offset);
    const float* a_scales0 = reinterpret_cast<const float*>(shared + L::a_scale_offset) + row;
    const float* b_scales0 = reinterpret_cast<const float*>(shared + L::b_scale_offset) + col;
    // A group's partial sums. The WGMMAs declare them read (hopper.cuh says why), so they are
    // defined once here; their values never matter.
    float part[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) part[i] = 0.0f;
    uint32_t pass = 0; // as the producer's
    for (int t = blockIdx.x; t < items; t += gridDim.x) {
        int tile_row, tile_col, k_begin, k_end;
        work_at(t, p, tile_row, tile_col, k_begin, k_end);
        float sum[waves][64];
#pragma unroll
        for (int w = 0; w < waves; ++w)
#pragma unroll
            for (int i = 0; i < 64; ++i) sum[w][i] = 0.0f;
        // Group g of stage s for wave w: its G/32 WGMMAs into `part` (its old values ignored).
        auto issue = [&](int s, int g, int w) {
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < group / 32; ++kk) {
                const uint32_t offset = g * group + kk * 32;
                const uint64_t da = advance_descriptor(a_desc0, s * a_stage_bytes +
                                                                    w * 128 * tile_k + offset),
                               db = advance_descriptor(b_desc0, s * b_stage_bytes + offset);
                if constexpr (a_format == Format::e4m3) {
                    if (kk == 0)
                        wgmma_m64n128k32_e4m3_e4m3_overwrite(part, da, db);
                    else
                        wgmma_m64n128k32_e4m3_e4m3(part, da, db);
                } else {
                    if (kk == 0)
                        wgmma_m64n128k32_e5m2_e4m3_overwrite(part, da, db);
                    else
                        wgmma_m64n128k32_e5m2_e4m3(part, da, db);
                }
            }
            wgmma_commit();
        };
        // Promotion of a finished group: its partial sums times its scales (s0, s1 for rows row
        // and row + 8), into the sums.
        // A grouped b scales each column too, by the same scales in both waves: at G = 128 read
        // once per group, while the first wave's WGMMAs run; at G = 32 those 32 registers would
        // spill, so read before each promotion. Other scalings multiply by 1, which folds away.
        constexpr bool columns_once = group == 128;
        float2 column_scales[16];
        auto read_column_scales = [&](int s, int g) {
            const float* sb = b_scales0 + s * L::b_scale_floats + g * tile_n;
#pragma unroll
            for (int c = 0; c < 16; ++c)
                column_scales[c] = b_scaling == MicroscaledB::groups
                                       ? *reinterpret_cast<const float2*>(sb + 8 * c)
                                       : make_float2(1.0f, 1.0f);
        };
        auto promote = [&](float(&into)[64], float s0, float s1) {
            fence_registers(part);
#pragma unroll
            for (int c = 0; c < 16; ++c) {
                const float2 b = column_scales[c];
                into[4 * c] += part[4 * c] * (s0 * b.x);
                into[4 * c + 1] += part[4 * c + 1] * (s0 * b.y);
                into[4 * c + 2] += part[4 * c + 2] * (s1 * b.x);
                into[4 * c + 3] += part[4 * c + 3] * (s1 * b.y);
            }
        };
        auto release = [&](int s) {
            __syncwarp();
            if (lane == 0) mbarrier_arrive(empty + 8 * s); // free for TMA again
        };
        // The ring is unrolled, so every shared address below is the base plus a constant. A
        // stage's groups in turn: WGMMAs, wait, promotion; the two warpgroups take turns on the
        // tensor cores, so one's promotion runs under the other's WGMMAs.
        for (int first = k_begin; first < k_end; first += L::stages, ++pass) {
            const uint32_t phase = pass & 1;
#pragma unroll
            for (int s = 0; s < L::stages; ++s) {
                mbarrier_wait(full + 8 * s, phase);
                if (first + s >= k_end) { // past the end of the split's K: nothing loaded
                    release(s);
                    continue;
                }
                const float block =
                    b_scaling == MicroscaledB::blocks_128x128 ? block_scale[s] : 1.0f;
#pragma unroll
                for (int g = 0; g < groups_per_stage; ++g)
#pragma unroll
                    for (int w = 0; w < waves; ++w) {
                        issue(s, g, w);
                        // The scales, read while the WGMMAs run, off the promotion's path.
                        if (columns_once && w == 0) read_column_scales(s, g);
                        const float* sa = a_scales0 + s * L::a_scale_floats + g * tile_m + w * 128;
                        const float s0 = sa[0] * block, s1 = sa[8] * block;
                        wgmma_wait<0>();
                        if (!columns_once) read_column_scales(s, g);
                        // Nothing of the stage is read after this: TMA may refill it during the
                        // promotion.
                        if (g == groups_per_stage - 1 && w == waves - 1) release(s);
                        promote(sum[w], s0, s1);
                    }
            }
        }

        uint8_t* staging = shared + L::staging_offset + warpgroup * staging_bytes;
        const int64_t out_offset = int64_t(t / tiles) * p.m * p.n; // the split's partial sums
#pragma unroll
        for (int w = 0; w < waves; ++w) {
            const int wave_row = tile_row * tile_m + w * 128;
            if (p.out_fp32)
                store_wave<float>(p, static_cast<float*>(p.out) + out_offset, staging,
                                  1 + warpgroup, sum[w], alpha, wave_row, tile_col, warpgroup, row,
                                  col);
            else
                store_wave<__nv_bfloat16>(p, static_cast<__nv_bfloat16*>(p.out) + out_offset,
                                          staging, 1 + warpgroup, sum[w], alpha, wave_row, tile_col,
                                          warpgroup, row, col);
        }
    }
}

using EncodeTiled = PFN_cuTensorMapEncodeTiled_v12000;

// The driver's tensor-map encoder, found at run time so that the binary does not link libcuda
// (it starts, and runs the CPU backend, on machines without a driver).
EncodeTiled tensor_map_encoder() {
    static EncodeTiled encode = [] {
        void* fn = nullptr;
        cudaDriverEntryPointQueryResult found{};
        OCTET_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                                          cudaEnableDefault, &found));
        if (found != cudaDriverEntryPointSuccess || !fn)
            throw Error("microscaled GEMM: the driver has no cuTensorMapEncodeTiled");
        return reinterpret_cast<EncodeTiled>(fn);
    }();
    return encode;
}

// A 2D tensor map over a row-major [outer, inner] array with a pitch of `inner` elements.
CUtensorMap tensor_map_2d(const void* base, CUtensorMapDataType type, uint64_t element_bytes,
                          uint64_t inner, uint64_t outer, uint32_t box_inner, uint32_t box_outer,
                          bool swizzle_128b, const char* what) {
    CUtensorMap map{};
    const cuuint64_t dims[2] = {inner, outer};
    const cuuint64_t pitch[1] = {inner * element_bytes};
    const cuuint32_t box[2] = {box_inner, box_outer};
    const cuuint32_t element_strides[2] = {1, 1};
    const CUresult r =
        tensor_map_encoder()(&map, type, 2, const_cast<void*>(base), dims, pitch, box,
                             element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                             swizzle_128b ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
                             CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        throw Error(std::string("microscaled GEMM: cuTensorMapEncodeTiled failed for ") + what +
                    " (CUresult " + std::to_string(int(r)) + ", " + std::to_string(outer) + " x " +
                    std::to_string(inner) + ")");
    return map;
}

// What a launch needs besides the kernel's template parameters.
struct Launch {
    const MicroscaledGemmArgs& g;
    int64_t k_pitch;
    int sm_count;
    Buffer<float>& partials;
    cudaStream_t stream;
};

// How many ways to split K: where the output tiles would leave SMs idle (the wgrad of a small
// model: few outputs, K the tokens), the split that fills the SMs' waves best, by 5% or more over
// fewer splits, each split keeping 8 stages or more.
int k_splits(int64_t tiles, int64_t k_stages, int sm_count) {
    const auto filled = [&](int64_t items) {
        return double(items) / double((items + sm_count - 1) / sm_count * sm_count);
    };
    int best = 1;
    for (int splits = 2; splits <= 16 && k_stages / splits >= 8; ++splits)
        if (filled(tiles * splits) > 1.05 * filled(tiles * best)) best = splits;
    return best;
}

// out = Σ_s partials[s] + bias + beta · c, the splits in order (none: k = 0); c joins FP32
// outputs only, as in the kernel's epilogue.
void add_partials(const MicroscaledGemmArgs& g, const float* partials, int splits,
                  cudaStream_t stream) {
    finish_gemm_output({partials, splits, g.bias, g.out_fp32 ? g.c : nullptr, g.beta, g.out,
                        !g.out_fp32, g.m, g.n},
                       stream);
}

template <int group, Format a_format, MicroscaledB b_scaling>
void launch(const Launch& l) {
    const MicroscaledGemmArgs& g = l.g;
    const int64_t k_pitch = l.k_pitch;
    const cudaStream_t stream = l.stream;
    using L = SharedLayout<group>;
    auto* kernel = microscaled_gemm_kernel<group, a_format, b_scaling>;
    static std::once_flag opted_in;
    std::call_once(opted_in, [&] {
        OCTET_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              L::launch_bytes));
    });
    const int64_t groups = (g.k + group - 1) / group;
    const CUtensorMap map_a = tensor_map_2d(g.a, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, k_pitch, g.m,
                                            tile_k, tile_m, true, "a");
    const CUtensorMap map_b = tensor_map_2d(g.b, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, k_pitch, g.n,
                                            tile_k, tile_n, true, "b");
    const CUtensorMap map_sa =
        tensor_map_2d(g.a_scales, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, microscaled_scale_stride(g.m),
                      groups, tile_m, L::groups_per_stage, false, "a's scales");
    const CUtensorMap map_sb = g.b_scaling == MicroscaledB::groups
                                   ? tensor_map_2d(g.b_scales, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4,
                                                   microscaled_scale_stride(g.n), groups, tile_n,
                                                   L::groups_per_stage, false, "b's scales")
                                   : map_sa; // not read
    Params p{};
    p.b_block_scales = g.b_scales;
    p.alpha = g.alpha;
    p.out = g.out;
    p.bias = g.bias;
    p.c = g.c;
    p.beta = g.beta;
    p.m = int(g.m);
    p.n = int(g.n);
    p.out_fp32 = g.out_fp32;
    p.tiles_m = int((g.m + tile_m - 1) / tile_m);
    p.tiles_n = int((g.n + tile_n - 1) / tile_n);
    p.k_stages = int((k_pitch + tile_k - 1) / tile_k);
    const int64_t tiles = int64_t(p.tiles_m) * p.tiles_n;
    p.splits = k_splits(tiles, p.k_stages, l.sm_count);
    if (p.splits > 1) { // FP32 partial sums of each split, added up below in a fixed order
        l.partials.resize(p.splits * g.m * g.n);
        p.out = l.partials.data();
        p.out_fp32 = true;
        p.bias = nullptr;
        p.beta = 0.0f;
    }
    p.out_vectors = g.n % (p.out_fp32 ? 4 : 8) == 0 && aligned_to(p.out, 16) &&
                    (p.beta == 0.0f || aligned_to(p.c, 16));
    const int grid = int(std::min<int64_t>(tiles * p.splits, l.sm_count));
    kernel<<<grid, threads, L::launch_bytes, stream>>>(map_a, map_b, map_sa, map_sb, p);
    OCTET_CUDA_LAUNCHED();
    if (p.splits > 1) add_partials(g, l.partials.data(), p.splits, stream);
}

int64_t round_up(int64_t x, int64_t to) {
    return (x + to - 1) / to * to;
}

// A rows × cols matrix of bytes copied into a rows × pitch one, zero padded.
const uint8_t* pad_rows(const uint8_t* src, int64_t rows, int64_t cols, int64_t pitch,
                        Buffer<uint8_t>& dst, cudaStream_t stream) {
    dst.resize(rows * pitch);
    OCTET_CUDA_CHECK(cudaMemsetAsync(dst.data(), 0, dst.bytes(), stream));
    OCTET_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), size_t(pitch), src, size_t(cols), size_t(cols),
                                       size_t(rows), cudaMemcpyDeviceToDevice, stream));
    return dst.data();
}

// The kernel instance for the run's group, a's format and b's scaling.
template <int group, Format a_format>
void launch_for(MicroscaledB b_scaling, const Launch& l) {
    switch (b_scaling) {
    case MicroscaledB::per_tensor:
        return launch<group, a_format, MicroscaledB::per_tensor>(l);
    case MicroscaledB::blocks_128x128:
        return launch<group, a_format, MicroscaledB::blocks_128x128>(l);
    default:
        return launch<group, a_format, MicroscaledB::groups>(l);
    }
}

void launch_for(int group, Format a_format, MicroscaledB b_scaling, const Launch& l) {
    const bool e4m3 = a_format == Format::e4m3;
    if (group == 128)
        e4m3 ? launch_for<128, Format::e4m3>(b_scaling, l)
             : launch_for<128, Format::e5m2>(b_scaling, l);
    else
        e4m3 ? launch_for<32, Format::e4m3>(b_scaling, l)
             : launch_for<32, Format::e5m2>(b_scaling, l);
}

std::string shape_name(const MicroscaledGemmArgs& g) {
    return std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k);
}

} // namespace

MicroscaledGemm::MicroscaledGemm(Memory& memory)
    : a_padded_(memory), b_padded_(memory), partials_(memory),
      sm_count_(current_device_sm_count()) {}

void MicroscaledGemm::run(const MicroscaledGemmArgs& args, cudaStream_t stream) {
    if (args.m < 0 || args.n < 0 || args.k < 0 || args.m > INT32_MAX || args.n > INT32_MAX ||
        args.k > INT32_MAX)
        throw Error("microscaled GEMM: shape " + shape_name(args) + " out of range");
    if (args.group != 32 && args.group != 128)
        throw Error("microscaled GEMM: group " + std::to_string(args.group) +
                    " along K (32 or 128)");
    if (args.a_format != Format::e4m3 && args.a_format != Format::e5m2)
        throw Error("microscaled GEMM: a must be E4M3 or E5M2 codes");
    if (!args.out_fp32 && args.beta != 0.0f)
        throw Error("microscaled GEMM: beta needs FP32 output");
    if (args.m == 0 || args.n == 0) return;
    MicroscaledGemmArgs g = args;
    if (!g.c) g.c = static_cast<const float*>(g.out);         // beta · out: accumulate
    if (g.k == 0) return add_partials(g, nullptr, 0, stream); // bias + beta · c
    if (!args.a_scales || (args.b_scaling != MicroscaledB::per_tensor && !args.b_scales))
        throw Error("microscaled GEMM: missing scales for " + shape_name(args));
    for (const void* scales :
         {static_cast<const void*>(args.a_scales), static_cast<const void*>(args.b_scales)})
        if (scales && !aligned_to(scales, 16))
            throw Error("microscaled GEMM: scale grids must start 16-byte aligned");
    // TMA wants 16-byte aligned rows: k is padded with zero codes where it is not.
    const int64_t k_pitch = round_up(args.k, 16);
    if (k_pitch != args.k || !aligned_to(args.a, 16))
        g.a = pad_rows(args.a, args.m, args.k, k_pitch, a_padded_, stream);
    if (k_pitch != args.k || !aligned_to(args.b, 16))
        g.b = pad_rows(args.b, args.n, args.k, k_pitch, b_padded_, stream);
    launch_for(args.group, args.a_format, args.b_scaling,
               Launch{g, k_pitch, sm_count_, partials_, stream});
}

} // namespace octet::cuda
