// Quantization kernels (see quantize.h): kernels first, then launchers.
// Fast path (rows of a multiple of 8 elements): each thread owns 8 consecutive elements — one
// 16-byte load, one 8-byte store — and a group of G is G/8 neighbouring threads that reduce the
// amax with shuffles. 256 threads per block.
// Fallback (any shape): one warp per group, lane l handles elements l, l + 32, … .
#include "cuda/check.h"
#include "cuda/launch.cuh"
#include "cuda/quantize.h"
#include "cuda/reduce.cuh"
#include "numerics/scaling.h"

namespace octet::cuda {
namespace {

constexpr int warps_per_block = 8;

// amax of the finite elements of one group (every lane gets it).
__device__ float group_amax(const __nv_bfloat16* row, int64_t c0, int64_t c1, int lane) {
    float m = 0.0f;
    for (int64_t c = c0 + lane; c < c1; c += 32) {
        m = finite_amax(m, __bfloat162float(row[c]));
    }
    return warp_max(m);
}

// The group this warp handles in the fallback kernels: row r, columns [c0, c1).
struct WarpGroup {
    int64_t g, r, c0, c1;
    int lane;
    bool valid;
};

__device__ WarpGroup warp_group(int64_t rows, int64_t cols, int64_t group) {
    const int64_t groups_per_row = (cols + group - 1) / group;
    WarpGroup w;
    w.g = int64_t(blockIdx.x) * warps_per_block + threadIdx.x / 32;
    w.lane = threadIdx.x % 32;
    w.valid = w.g < rows * groups_per_row;
    w.r = w.g / groups_per_row;
    w.c0 = (w.g % groups_per_row) * group;
    w.c1 = min(cols, w.c0 + group);
    return w;
}

__global__ void quantize_groups_kernel(GroupQuantizeArgs a) {
    const WarpGroup w = warp_group(a.rows, a.cols, a.group);
    if (!w.valid) return;
    const int64_t r = w.r, c0 = w.c0, c1 = w.c1, g = w.g;
    const int lane = w.lane;
    const __nv_bfloat16* row = a.x + r * a.cols;
    const BlockScale s =
        scale_from_amax(group_amax(row, c0, c1, lane), format_max(a.format), 0, a.pow2);
    for (int64_t c = c0 + lane; c < c1; c += 32)
        a.codes[r * a.cols + c] = cast_scaled(__bfloat162float(row[c]), s.scale, a.format);
    if (lane == 0) a.scale_inv[g] = s.scale_inv;
}

// Pass 1: s_i = amax_i / 448 per group; the maximum over the tensor by an atomic max on the bits
// (non-negative floats order like their bit patterns).
__global__ void group_s_kernel(TwoLevelQuantizeArgs a) {
    const WarpGroup w = warp_group(a.rows, a.cols, a.group);
    if (!w.valid) return;
    const float s = group_amax(a.x + w.r * a.cols, w.c0, w.c1, w.lane) / format_max(Format::e4m3);
    if (w.lane == 0) {
        a.group_s[w.g] = s;
        atomicMax(reinterpret_cast<unsigned*>(a.global_scale_inv), __float_as_uint(s));
    }
}

// Pass 2: local exponents and codes, exactly as quantize_two_level on the CPU.
__global__ void two_level_codes_kernel(TwoLevelQuantizeArgs a) {
    const WarpGroup w = warp_group(a.rows, a.cols, a.group);
    if (!w.valid) return;
    const TwoLevelScale ts =
        moss_group_scale(a.group_s[w.g], moss_global_scale(*a.global_scale_inv));
    for (int64_t c = w.c0 + w.lane; c < w.c1; c += 32)
        a.codes[w.r * a.cols + c] =
            cast_scaled(__bfloat162float(a.x[w.r * a.cols + c]), ts.scale, Format::e4m3);
    if (w.lane == 0) a.local_scale_inv[w.g] = ts.local_scale_inv;
}

constexpr int vec_threads_per_block = 256;

template <int TPG> // threads per group: G / 8
__device__ float subgroup_max(float v) {
    for (int offset = TPG / 2; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
    return v;
}

// One thread's 8 elements and their amax (finite only); in = false past the row's end.
struct Chunk {
    float v[8];
    float amax = 0.0f;
    bool in = false;
    int64_t at = 0; // element offset of v[0]
};

template <int TPG>
__device__ Chunk load_chunk(const __nv_bfloat16* x, int64_t rows, int64_t cols, int64_t group,
                            int64_t g, int sub) {
    Chunk ch;
    const int64_t groups_per_row = (cols + group - 1) / group;
    if (g >= rows * groups_per_row) return ch;
    const int64_t r = g / groups_per_row, c = (g % groups_per_row) * group + int64_t(sub) * 8;
    if (c >= cols) return ch;
    ch.in = true;
    ch.at = r * cols + c;
    const uint4 raw = *reinterpret_cast<const uint4*>(x + ch.at);
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
    for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(pairs[i]);
        ch.v[2 * i] = f.x;
        ch.v[2 * i + 1] = f.y;
    }
    for (float v : ch.v) ch.amax = finite_amax(ch.amax, v);
    return ch;
}

__device__ void store_chunk(uint8_t* codes, const Chunk& ch, float scale, Format format) {
    uint64_t packed = 0;
    for (int i = 0; i < 8; ++i) packed |= uint64_t(cast_scaled(ch.v[i], scale, format)) << (8 * i);
    *reinterpret_cast<uint64_t*>(codes + ch.at) = packed;
}

template <int TPG>
__global__ void quantize_groups_vec_kernel(GroupQuantizeArgs a) {
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t g = t / TPG;
    const int sub = int(t % TPG);
    const Chunk ch = load_chunk<TPG>(a.x, a.rows, a.cols, a.group, g, sub);
    const float amax = subgroup_max<TPG>(ch.amax); // every lane takes part in the shuffles
    if (g >= a.rows * ((a.cols + a.group - 1) / a.group)) return;
    const BlockScale s = scale_from_amax(amax, format_max(a.format), 0, a.pow2);
    if (ch.in) store_chunk(a.codes, ch, s.scale, a.format);
    if (sub == 0) a.scale_inv[g] = s.scale_inv;
}

template <int TPG>
__global__ void group_s_vec_kernel(TwoLevelQuantizeArgs a) {
    __shared__ unsigned block_max;
    if (threadIdx.x == 0) block_max = 0;
    __syncthreads();
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t g = t / TPG;
    const int sub = int(t % TPG);
    const Chunk ch = load_chunk<TPG>(a.x, a.rows, a.cols, a.group, g, sub);
    const float s = subgroup_max<TPG>(ch.amax) / format_max(Format::e4m3);
    if (sub == 0 && g < a.rows * ((a.cols + a.group - 1) / a.group)) {
        a.group_s[g] = s;
        atomicMax(&block_max, __float_as_uint(s));
    }
    __syncthreads();
    if (threadIdx.x == 0) atomicMax(reinterpret_cast<unsigned*>(a.global_scale_inv), block_max);
}

template <int TPG>
__global__ void two_level_codes_vec_kernel(TwoLevelQuantizeArgs a) {
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t g = t / TPG;
    const int sub = int(t % TPG);
    const Chunk ch = load_chunk<TPG>(a.x, a.rows, a.cols, a.group, g, sub);
    if (g >= a.rows * ((a.cols + a.group - 1) / a.group)) return;
    const TwoLevelScale ts = moss_group_scale(a.group_s[g], moss_global_scale(*a.global_scale_inv));
    if (ch.in) store_chunk(a.codes, ch, ts.scale, Format::e4m3);
    if (sub == 0) a.local_scale_inv[g] = ts.local_scale_inv;
}

// The fast path needs rows of whole 16-byte chunks and a group of 32 or 128.
bool vectorizable(int64_t cols, int64_t group, const void* x) {
    return cols % 8 == 0 && (group == 32 || group == 128) && aligned_to(x, 16);
}

unsigned vec_blocks(int64_t groups, int64_t group) {
    const int64_t threads = groups * (group / 8);
    return unsigned((threads + vec_threads_per_block - 1) / vec_threads_per_block);
}

constexpr int both_tile = 128;
constexpr int both_threads = 256; // two threads per row (and per column) of the tile

// Block (rb, cb) owns rows [128·rb, +128) and cols [128·cb, +128). Each of the tile's rows is one
// row-wise group; each of its columns one column-wise group.
__global__ void quantize_both_kernel(BothOrientationsArgs a) {
    __shared__ __nv_bfloat16 tile_x[both_tile][both_tile + 8];
    const int64_t col_blocks = (a.cols + both_tile - 1) / both_tile;
    const int64_t rb = blockIdx.x / col_blocks, cb = blockIdx.x % col_blocks;
    const int64_t r0 = rb * both_tile, c0 = cb * both_tile;
    const int rows_here = int(min(int64_t(both_tile), a.rows - r0));
    const int cols_here = int(min(int64_t(both_tile), a.cols - c0));
    for (int i = threadIdx.x; i < both_tile * both_tile; i += both_threads) {
        const int r = i / both_tile, c = i % both_tile;
        tile_x[r][c] = r < rows_here && c < cols_here ? a.x[(r0 + r) * a.cols + c0 + c]
                                                      : __float2bfloat16(0.0f);
    }
    __syncthreads();
    const float fmt_max = format_max(a.format);
    const bool full =
        rows_here == both_tile && cols_here == both_tile && a.cols % 4 == 0 && a.rows % 16 == 0;
    if (full) {
        // Row-wise: warp w takes rows w, w + 8, …; lane l the 4 columns 4l..4l+3 (4-byte stores).
        const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
        for (int r = warp; r < both_tile; r += both_threads / 32) {
            float v[4], m = 0.0f;
            for (int j = 0; j < 4; ++j) {
                v[j] = __bfloat162float(tile_x[r][4 * lane + j]);
                m = finite_amax(m, v[j]);
            }
            const BlockScale rs = scale_from_amax(warp_max(m), fmt_max, 0, a.pow2);
            uint32_t packed = 0;
            for (int j = 0; j < 4; ++j)
                packed |= uint32_t(cast_scaled(v[j], rs.scale, a.format)) << (8 * j);
            *reinterpret_cast<uint32_t*>(a.codes + (r0 + r) * a.cols + c0 + 4 * lane) = packed;
            if (lane == 0) a.scale_inv[(r0 + r) * col_blocks + cb] = rs.scale_inv;
        }
        // Column-wise: thread (half, c) takes rows [64·half, +64) of column c; the halves meet in
        // shared memory; each writes its 64 codes as four 16-byte stores.
        __shared__ float half_max[2][both_tile];
        const int c = threadIdx.x % both_tile, half = threadIdx.x / both_tile;
        float m = 0.0f;
        for (int r = 64 * half; r < 64 * half + 64; ++r)
            m = finite_amax(m, __bfloat162float(tile_x[r][c]));
        half_max[half][c] = m;
        __syncthreads();
        const BlockScale cs =
            scale_from_amax(fmaxf(half_max[0][c], half_max[1][c]), fmt_max, 0, a.pow2);
        uint8_t* out = a.codes_t + (c0 + c) * a.rows + r0 + 64 * half;
        for (int q = 0; q < 4; ++q) {
            uint32_t words[4];
            for (int w = 0; w < 4; ++w) {
                uint32_t packed = 0;
                for (int j = 0; j < 4; ++j) {
                    const float v = __bfloat162float(tile_x[64 * half + 16 * q + 4 * w + j][c]);
                    packed |= uint32_t(cast_scaled(v, cs.scale, a.format)) << (8 * j);
                }
                words[w] = packed;
            }
            *reinterpret_cast<uint4*>(out + 16 * q) =
                make_uint4(words[0], words[1], words[2], words[3]);
        }
        const int64_t row_blocks = (a.rows + both_tile - 1) / both_tile;
        if (half == 0) a.scale_inv_t[(c0 + c) * row_blocks + rb] = cs.scale_inv;
        return;
    }
    // Edge tiles: two threads per row, then per column, byte by byte.
    const int half = threadIdx.x % 2,
              line = threadIdx.x / 2; // this thread's half of row/col `line`
    // Row-wise: row `line`, columns [64·half, +64).
    float m = 0.0f;
    for (int c = half * 64; c < half * 64 + 64; ++c)
        m = finite_amax(m, __bfloat162float(tile_x[line][c]));
    m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, 1));
    const BlockScale rs = scale_from_amax(m, fmt_max, 0, a.pow2);
    if (line < rows_here) {
        uint8_t* out = a.codes + (r0 + line) * a.cols + c0;
        for (int c = half * 64; c < half * 64 + 64 && c < cols_here; ++c)
            out[c] = cast_scaled(__bfloat162float(tile_x[line][c]), rs.scale, a.format);
        if (half == 0) a.scale_inv[(r0 + line) * col_blocks + cb] = rs.scale_inv;
    }
    // Column-wise: column `line`, rows [64·half, +64).
    m = 0.0f;
    for (int r = half * 64; r < half * 64 + 64; ++r)
        m = finite_amax(m, __bfloat162float(tile_x[r][line]));
    m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, 1));
    const BlockScale cs = scale_from_amax(m, fmt_max, 0, a.pow2);
    if (line < cols_here) {
        uint8_t* out = a.codes_t + (c0 + line) * a.rows + r0;
        for (int r = half * 64; r < half * 64 + 64 && r < rows_here; ++r)
            out[r] = cast_scaled(__bfloat162float(tile_x[r][line]), cs.scale, a.format);
        const int64_t row_blocks = (a.rows + both_tile - 1) / both_tile;
        if (half == 0) a.scale_inv_t[(c0 + line) * row_blocks + rb] = cs.scale_inv;
    }
}

__global__ void finish_global_kernel(float* global) {
    *global = moss_global_scale(*global);
}

unsigned blocks_for(int64_t groups) {
    return unsigned((groups + warps_per_block - 1) / warps_per_block);
}

} // namespace

void quantize_groups(const GroupQuantizeArgs& a, cudaStream_t stream) {
    const int64_t groups = a.rows * ((a.cols + a.group - 1) / a.group);
    if (groups == 0) return;
    if (!vectorizable(a.cols, a.group, a.x))
        quantize_groups_kernel<<<blocks_for(groups), 32 * warps_per_block, 0, stream>>>(a);
    else if (a.group == 128)
        quantize_groups_vec_kernel<16>
            <<<vec_blocks(groups, 128), vec_threads_per_block, 0, stream>>>(a);
    else
        quantize_groups_vec_kernel<4>
            <<<vec_blocks(groups, 32), vec_threads_per_block, 0, stream>>>(a);
    OCTET_CUDA_CHECK(cudaGetLastError());
}

void quantize_two_level(const TwoLevelQuantizeArgs& a, cudaStream_t stream) {
    const int64_t groups = a.rows * ((a.cols + a.group - 1) / a.group);
    if (groups == 0) return;
    OCTET_CUDA_CHECK(cudaMemsetAsync(a.global_scale_inv, 0, sizeof(float), stream));
    if (!vectorizable(a.cols, a.group, a.x)) {
        group_s_kernel<<<blocks_for(groups), 32 * warps_per_block, 0, stream>>>(a);
        OCTET_CUDA_CHECK(cudaGetLastError());
        two_level_codes_kernel<<<blocks_for(groups), 32 * warps_per_block, 0, stream>>>(a);
    } else if (a.group == 128) {
        group_s_vec_kernel<16><<<vec_blocks(groups, 128), vec_threads_per_block, 0, stream>>>(a);
        OCTET_CUDA_CHECK(cudaGetLastError());
        two_level_codes_vec_kernel<16>
            <<<vec_blocks(groups, 128), vec_threads_per_block, 0, stream>>>(a);
    } else {
        group_s_vec_kernel<4><<<vec_blocks(groups, 32), vec_threads_per_block, 0, stream>>>(a);
        OCTET_CUDA_CHECK(cudaGetLastError());
        two_level_codes_vec_kernel<4>
            <<<vec_blocks(groups, 32), vec_threads_per_block, 0, stream>>>(a);
    }
    OCTET_CUDA_CHECK(cudaGetLastError());
    finish_global_kernel<<<1, 1, 0, stream>>>(a.global_scale_inv);
    OCTET_CUDA_CHECK(cudaGetLastError());
}

void quantize_blockwise_both(const BothOrientationsArgs& a, cudaStream_t stream) {
    const int64_t blocks =
        ((a.rows + both_tile - 1) / both_tile) * ((a.cols + both_tile - 1) / both_tile);
    if (blocks == 0) return;
    quantize_both_kernel<<<unsigned(blocks), both_threads, 0, stream>>>(a);
    OCTET_CUDA_CHECK(cudaGetLastError());
}

} // namespace octet::cuda
