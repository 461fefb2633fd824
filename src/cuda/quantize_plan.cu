// Quantize plans on the GPU (see quantize_plan.h).
#include "cuda/quantize_plan.h"

#include <algorithm>
#include <type_traits>

#include "cuda/launch.cuh"
#include "cuda/quantize.h"
#include "cuda/quantize_quad.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {
namespace {

constexpr int amax_chunk = 32; // columns per thread in the amax pass

// A thread per chunk of a row: the finite amax of each block the chunk touches, merged by an
// atomic max on the float bits; a warp whose chunks all fall in one block merges first, so a
// per-tensor amax costs one atomic per warp rather than one per thread.
__global__ void block_amax_kernel(const float* x, int64_t rows, int64_t cols, int64_t block_rows,
                                  int64_t block_cols, int64_t grid_cols, uint32_t* amax) {
    const int64_t chunks_per_row = (cols + amax_chunk - 1) / amax_chunk;
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    int64_t cell = -1;
    float m = 0.0f;
    bool single = true;
    if (t < rows * chunks_per_row) {
        const int64_t r = t / chunks_per_row, c0 = (t % chunks_per_row) * amax_chunk;
        const int64_t c1 = min(cols, c0 + amax_chunk), row_cell = (r / block_rows) * grid_cols;
        for (int64_t c = c0; c < c1; ++c) {
            const int64_t here = row_cell + c / block_cols;
            if (here != cell) {
                if (cell >= 0) {
                    atomicMax(amax + cell, __float_as_uint(m));
                    single = false;
                }
                cell = here;
                m = 0.0f;
            }
            m = finite_amax(m, x[r * cols + c]);
        }
    }
    const int64_t first = __shfl_sync(0xFFFFFFFFu, cell, 0);
    if (__all_sync(0xFFFFFFFFu, cell < 0 || (single && cell == first))) {
        m = warp_max(m);
        if (threadIdx.x % 32 == 0 && first >= 0) atomicMax(amax + first, __float_as_uint(m));
    } else if (cell >= 0) {
        atomicMax(amax + cell, __float_as_uint(m));
    }
}

// The float amax whose bits `amax` holds, as a double at `to` (a plan's sync_bound).
__global__ void amax_bits_as_double(const uint32_t* amax, double* to) {
    *to = double(__uint_as_float(*amax));
}

// amax[cell] for every block of block_rows × block_cols (amax zeroed here).
void block_amax(const float* x, int64_t rows, int64_t cols, int64_t block_rows, int64_t block_cols,
                int64_t grid_cols, uint32_t* amax, int64_t cells, cudaStream_t stream) {
    if (cells == 1) {
        tensor_finite_amax(x, rows * cols, amax, stream);
        return;
    }
    OCTET_CUDA_CHECK(cudaMemsetAsync(amax, 0, size_t(cells) * sizeof(uint32_t), stream));
    const int64_t threads = rows * ((cols + amax_chunk - 1) / amax_chunk);
    if (threads == 0) return;
    block_amax_kernel<<<blocks_for(threads, elementwise_threads), elementwise_threads, 0, stream>>>(
        x, rows, cols, block_rows, block_cols, grid_cols, amax);
    OCTET_CUDA_LAUNCHED();
}

// codes[i] = cast of x[i] by the multiplier of its block.
void cast_by_blocks(const float* x, int64_t rows, int64_t cols, int64_t block_rows,
                    int64_t block_cols, int64_t grid_cols, const float* multipliers, Format format,
                    uint8_t* codes, cudaStream_t stream) {
    for_each(rows * cols, stream, [=] __device__(int64_t i) {
        const int64_t r = i / cols, c = i % cols;
        codes[i] =
            cast_scaled(x[i], multipliers[(r / block_rows) * grid_cols + c / block_cols], format);
    });
}

// The one-pass path of 1×G plans (G = 32: MX, 128: block-wise) on rows of whole float4s: a warp per
// 128 columns of a row, lane l holding columns 4l…4l+3, a group G/4 lanes. It reads x once, where
// the general path reads it twice; the amax is the same exact maximum, the rule and cast the same.
template <int group>
__global__ void quantize_row_groups_kernel(const float* x, int64_t rows, int64_t cols,
                                           ScaleRule rule, Format format, uint8_t* codes,
                                           float* scale_inv, int64_t grid_cols) {
    const int64_t chunks = (cols + 127) / 128;
    const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    if (warp >= rows * chunks) return; // whole warps
    const int lane = int(threadIdx.x % 32);
    const int64_t r = warp / chunks, c = (warp % chunks) * 128 + lane * 4;
    const bool inside = c < cols;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (inside) v = *reinterpret_cast<const float4*>(x + r * cols + c);
    const float amax = segment_max<group / 4>(finite_amax4(0.0f, v));
    const BlockScale s = rule(amax);
    if (!inside) return;
    if (lane % (group / 4) == 0) scale_inv[r * grid_cols + c / group] = s.scale_inv;
    *reinterpret_cast<uchar4*>(codes + r * cols + c) = cast_scaled4(v, s.scale, format);
}

// The row-group paths (quantize_row_groups, two_level_row_groups) take G = 32 or 128 on rows of
// whole float4s.
bool row_groups_fit(const float* x, int64_t cols, int64_t group) {
    return (group == 32 || group == 128) && cols % 4 == 0 && aligned_to(x, 16);
}

// f(std::integral_constant<int, G>) for G = group, 32 or 128: the kernels' template argument.
template <typename F>
void with_group(int64_t group, F f) {
    if (group == 32)
        f(std::integral_constant<int, 32>{});
    else
        f(std::integral_constant<int, 128>{});
}

// Runs the one-pass path when the plan and the layout allow it; false otherwise.
bool quantize_row_groups(const float* x, int64_t rows, int64_t cols, int64_t group,
                         const ScaleRule& rule, Format format, uint8_t* codes, float* scale_inv,
                         int64_t grid_cols, cudaStream_t stream) {
    if (!row_groups_fit(x, cols, group)) return false;
    const unsigned blocks = blocks_for(rows * ((cols + 127) / 128) * 32, elementwise_threads);
    with_group(group, [&](auto g) {
        quantize_row_groups_kernel<decltype(g)::value><<<blocks, elementwise_threads, 0, stream>>>(
            x, rows, cols, rule, format, codes, scale_inv, grid_cols);
    });
    OCTET_CUDA_LAUNCHED();
    return true;
}

// The one-pass path of 128 × 128 blocks (block-wise weights) on rows of whole float4s: a block of
// 256 threads per tile, lane l of warp w holding columns 4l … 4l + 3 of rows w, w + 8, …, so the
// tile (64 floats a thread) is read once into registers, its amax is a block maximum, and each
// warp stores a row's 128 codes in one instruction. The same amax, rule and cast as the general
// path's three passes.
constexpr int tile_block = 128, tile_warps = 8, tile_rows_per_warp = tile_block / tile_warps;

__global__ void quantize_tiles_128_kernel(const float* x, int64_t rows, int64_t cols,
                                          ScaleRule rule, bool fixed, Format format, uint8_t* codes,
                                          float* scale_inv, int64_t grid_cols) {
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
    const int64_t r0 = int64_t(blockIdx.y) * tile_block,
                  c = int64_t(blockIdx.x) * tile_block + 4 * lane;
    float4 v[tile_rows_per_warp];
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < tile_rows_per_warp; ++k) {
        const int64_t r = r0 + warp + tile_warps * k;
        v[k] = r < rows && c < cols ? *reinterpret_cast<const float4*>(x + r * cols + c)
                                    : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        amax = finite_amax4(amax, v[k]);
    }
    const BlockScale s = rule(fixed ? 0.0f : block_max(amax));
    if (threadIdx.x == 0) scale_inv[int64_t(blockIdx.y) * grid_cols + blockIdx.x] = s.scale_inv;
    if (c >= cols) return;
#pragma unroll
    for (int k = 0; k < tile_rows_per_warp; ++k) {
        const int64_t r = r0 + warp + tile_warps * k;
        if (r < rows)
            *reinterpret_cast<uchar4*>(codes + r * cols + c) = cast_scaled4(v[k], s.scale, format);
    }
}

// Plans with one scale per row (row-wise recipes): a block per row finds the row's amax, then
// casts it, reading the row a second time from cache rather than from memory.
__global__ void quantize_rows_kernel(const float* x, int64_t cols, ScaleRule rule, Format format,
                                     uint8_t* codes, float* scale_inv) {
    const float* row = x + int64_t(blockIdx.x) * cols;
    float amax = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) amax = finite_amax(amax, row[c]);
    const BlockScale s = rule(block_max(amax));
    if (threadIdx.x == 0) scale_inv[blockIdx.x] = s.scale_inv;
    uint8_t* out = codes + int64_t(blockIdx.x) * cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        out[c] = cast_scaled(row[c], s.scale, format);
}

// A whole tensor cast with one given scale, its finite amax measured on the way (one atomic per
// block): delayed scaling's cast and its history's amax in one read of x. Four values per 16-byte
// load and their four codes in one store where x and codes are aligned (`vectors`); the last
// n % 4, or all of them otherwise, one by one.
__global__ void cast_fixed_with_amax_kernel(const float* x, int64_t n, BlockScale s, Format format,
                                            uint8_t* codes, float* scale_inv, uint32_t* amax_bits,
                                            bool vectors) {
    if (blockIdx.x == 0 && threadIdx.x == 0) scale_inv[0] = s.scale_inv;
    float amax = 0.0f;
    const int64_t stride = int64_t(gridDim.x) * blockDim.x,
                  first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t quads = vectors ? n / 4 : 0;
    for (int64_t q = first; q < quads; q += stride) {
        const float4 v = reinterpret_cast<const float4*>(x)[q];
        amax = finite_amax4(amax, v);
        reinterpret_cast<uchar4*>(codes)[q] = cast_scaled4(v, s.scale, format);
    }
    for (int64_t i = 4 * quads + first; i < n; i += stride) {
        const float v = x[i];
        amax = finite_amax(amax, v);
        codes[i] = cast_scaled(v, s.scale, format);
    }
    amax = block_max(amax);
    if (threadIdx.x == 0) atomicMax(amax_bits, __float_as_uint(amax));
}

// MOSS two-level in two passes over rows of whole float4s, a warp per 128 columns of a row as in
// quantize_row_groups. Pass 1 writes each group's s_i = amax_i / fmt_max and the maximum s_i of
// each coarse block of rows; a warp walks a contiguous run of chunks and merges its maximum by one
// atomic per coarse block it meets, not one per group. Pass 2 derives the global and local scales
// from those and casts.
template <int group>
__global__ void two_level_group_s_kernel(const float* x, int64_t rows, int64_t cols, int64_t coarse,
                                         float fmt_max, int64_t chunks_per_warp, float* group_s,
                                         uint32_t* coarse_max) {
    const int64_t chunks = (cols + 127) / 128, total = rows * chunks;
    const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = int(threadIdx.x % 32);
    const int64_t gc = (cols + group - 1) / group;
    int64_t block = -1;
    float block_max = 0.0f;
    for (int64_t k = warp * chunks_per_warp; k < min(total, (warp + 1) * chunks_per_warp); ++k) {
        const int64_t r = k / chunks, c = (k % chunks) * 128 + lane * 4;
        const bool inside = c < cols;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (inside) v = *reinterpret_cast<const float4*>(x + r * cols + c);
        const float s = segment_max<group / 4>(finite_amax4(0.0f, v)) / fmt_max;
        if (inside && lane % (group / 4) == 0) group_s[r * gc + c / group] = s;
        if (r / coarse != block) {
            if (block >= 0 && lane == 0) atomicMax(coarse_max + block, __float_as_uint(block_max));
            block = r / coarse;
            block_max = 0.0f;
        }
        block_max = fmaxf(block_max, warp_max(s));
    }
    if (block >= 0 && lane == 0) atomicMax(coarse_max + block, __float_as_uint(block_max));
}

template <int group>
__global__ void two_level_cast_kernel(const float* x, int64_t rows, int64_t cols, int64_t coarse,
                                      const float* group_s, const uint32_t* coarse_max,
                                      Format format, uint8_t* codes, float* local_inv,
                                      float* global_inv) {
    const int64_t chunks = (cols + 127) / 128;
    const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    if (warp >= rows * chunks) return; // whole warps
    const int lane = int(threadIdx.x % 32);
    const int64_t r = warp / chunks, c = (warp % chunks) * 128 + lane * 4;
    const float global = moss_global_scale(__uint_as_float(coarse_max[r / coarse]));
    if (warp % chunks == 0 && lane == 0 && r % coarse == 0) global_inv[r / coarse] = global;
    if (c >= cols) return;
    const int64_t cell = r * ((cols + group - 1) / group) + c / group;
    const TwoLevelScale ts = moss_group_scale(group_s[cell], global);
    if (lane % (group / 4) == 0) local_inv[cell] = ts.local_scale_inv;
    const float4 v = *reinterpret_cast<const float4*>(x + r * cols + c);
    *reinterpret_cast<uchar4*>(codes + r * cols + c) = cast_scaled4(v, ts.scale, format);
}

// Runs the two-pass MOSS path when the group and the layout allow it; false otherwise.
// `group_s` holds a float per group, `coarse_max` a zeroed word per coarse block.
bool two_level_row_groups(const float* x, int64_t rows, int64_t cols, int64_t group, int64_t coarse,
                          Format format, float* group_s, uint32_t* coarse_max, uint8_t* codes,
                          float* local_inv, float* global_inv, cudaStream_t stream) {
    if (!row_groups_fit(x, cols, group)) return false;
    const int64_t warps = rows * ((cols + 127) / 128);
    // Enough warps to fill the GPU several times over, each with a contiguous run of chunks.
    const int64_t pass1_warps = std::min<int64_t>(warps, 16384);
    const int64_t per_warp = (warps + pass1_warps - 1) / pass1_warps;
    const unsigned blocks1 = blocks_for(pass1_warps * 32, elementwise_threads),
                   blocks2 = blocks_for(warps * 32, elementwise_threads);
    const float fmt_max = format_max(format);
    with_group(group, [&](auto g) {
        constexpr int G = decltype(g)::value;
        two_level_group_s_kernel<G><<<blocks1, elementwise_threads, 0, stream>>>(
            x, rows, cols, coarse, fmt_max, per_warp, group_s, coarse_max);
        OCTET_CUDA_LAUNCHED();
        two_level_cast_kernel<G><<<blocks2, elementwise_threads, 0, stream>>>(
            x, rows, cols, coarse, group_s, coarse_max, format, codes, local_inv, global_inv);
        OCTET_CUDA_LAUNCHED();
    });
    return true;
}

} // namespace

// A ring of pinned slots, each with its event and the last function handed out for it.
struct AmaxReadback::Slots {
    static constexpr int count = 1024;
    uint32_t* host = nullptr;
    cudaEvent_t events[count] = {};
    std::weak_ptr<Pending> users[count];
    int next = 0;
    Slots() {
        OCTET_CUDA_CHECK(cudaMallocHost(&host, count * sizeof(uint32_t)));
        for (cudaEvent_t& e : events)
            OCTET_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    }
    ~Slots() {
        for (cudaEvent_t e : events)
            if (e) cudaEventDestroy(e);
        if (host) cudaFreeHost(host);
    }
};

struct AmaxReadback::Pending {
    std::shared_ptr<Slots> slots;
    int slot = 0;
    bool read = false;
    float value = 0.0f;
    float get() {
        if (!read) {
            OCTET_CUDA_CHECK(cudaEventSynchronize(slots->events[slot]));
            value = bits_to_float(slots->host[slot]);
            read = true;
        }
        return value;
    }
};

AmaxReadback::AmaxReadback() : slots_(std::make_shared<Slots>()) {}

AmaxReadback::Ticket AmaxReadback::reserve() {
    const int slot = slots_->next;
    slots_->next = (slot + 1) % Slots::count;
    // A slot's previous value is read out before the slot is reused.
    if (const std::shared_ptr<Pending> previous = slots_->users[slot].lock()) previous->get();
    auto pending = std::make_shared<Pending>();
    pending->slots = slots_;
    pending->slot = slot;
    slots_->users[slot] = pending;
    return {[pending] { return pending->get(); }, slot};
}

void AmaxReadback::commit(const Ticket& ticket, const uint32_t* amax, cudaStream_t stream) {
    OCTET_CUDA_CHECK(cudaMemcpyAsync(slots_->host + ticket.slot, amax, sizeof(uint32_t),
                                     cudaMemcpyDeviceToHost, stream));
    OCTET_CUDA_CHECK(cudaEventRecord(slots_->events[ticket.slot], stream));
}

void PlanRunner::measure_amax(const float* x, int64_t n, cudaStream_t stream) {
    amax_.resize(1);
    tensor_finite_amax(x, n, amax_.data(), stream);
}

void PlanRunner::store_amax(const float* x, int64_t n, double* to, cudaStream_t stream) {
    measure_amax(x, n, stream);
    amax_bits_as_double<<<1, 1, 0, stream>>>(amax_.data(), to);
    OCTET_CUDA_LAUNCHED();
}

float PlanRunner::tensor_amax(const float* x, int64_t n, cudaStream_t stream) {
    if (n == 0) return 0.0f;
    measure_amax(x, n, stream);
    const uint32_t bits = amax_.download()[0];
    return bits_to_float(bits);
}

void PlanRunner::run(const float* x, int64_t rows, int64_t cols, const QuantizePlan& plan,
                     DeviceQuantized& out, cudaStream_t stream) {
    out.format = plan.format;
    out.rows = rows;
    out.cols = cols;
    out.codes.resize(rows * cols);
    const int64_t n = rows * cols;
    if (plan.sync_bound) store_amax(x, n, plan.sync_bound, stream);
    if (plan.kind == QuantizePlan::Kind::blocks) {
        const int64_t br = plan.block.rows ? plan.block.rows : std::max<int64_t>(rows, 1);
        const int64_t bc = plan.block.cols ? plan.block.cols : std::max<int64_t>(cols, 1);
        DeviceScaleGrid& g = out.levels[0];
        g.shape(rows, cols, br, bc, plan.encoding, plan.power_of_two_scales());
        out.level_count = 1;
        if (n == 0) return;
        if (br == 1 && bc == cols && rows <= INT32_MAX) {
            quantize_rows_kernel<<<unsigned(rows), elementwise_threads, 0, stream>>>(
                x, cols, plan.rule, plan.format, out.codes.data(), g.scale_inv.data());
            OCTET_CUDA_LAUNCHED();
            return;
        }
        if (br == 1 &&
            quantize_row_groups(x, rows, cols, bc, plan.rule, plan.format, out.codes.data(),
                                g.scale_inv.data(), g.grid_cols, stream))
            return;
        // A given scale, or one from a bound, needs no amax.
        const bool fixed = !plan.rule.reads_amax();
        if (br == tile_block && bc == tile_block && row_groups_fit(x, cols, tile_block) &&
            g.grid_rows <= 65535) {
            const dim3 grid(unsigned(g.grid_cols), unsigned(g.grid_rows));
            quantize_tiles_128_kernel<<<grid, tile_warps * 32, 0, stream>>>(
                x, rows, cols, plan.rule, fixed, plan.format, out.codes.data(), g.scale_inv.data(),
                g.grid_cols);
            OCTET_CUDA_LAUNCHED();
            return;
        }
        const int64_t cells = g.grid_rows * g.grid_cols, gc = g.grid_cols;
        amax_bits_.resize(cells);
        multipliers_.resize(cells);
        if (!fixed) block_amax(x, rows, cols, br, bc, gc, amax_bits_.data(), cells, stream);
        const ScaleRule rule = plan.rule;
        const uint32_t* amax = amax_bits_.data();
        float *mult = multipliers_.data(), *scale_inv = g.scale_inv.data();
        for_each(cells, stream, [=] __device__(int64_t i) {
            const BlockScale s = rule(fixed ? 0.0f : __uint_as_float(amax[i]));
            mult[i] = s.scale;
            scale_inv[i] = s.scale_inv;
        });
        cast_by_blocks(x, rows, cols, br, bc, gc, mult, plan.format, out.codes.data(), stream);
        return;
    }

    // MOSS two-level.
    out.shape_two_level(rows, cols, plan.two_level);
    if (n == 0) return;
    const int64_t group = plan.two_level.group;
    DeviceScaleGrid &local = out.levels[0], &global = out.levels[1];
    const int64_t coarse = global.block_rows;
    const int64_t gc = local.grid_cols, cells = rows * gc, coarse_blocks = global.grid_rows;
    amax_bits_.resize(cells + coarse_blocks);
    multipliers_.resize(cells);
    uint32_t* amax = amax_bits_.data();
    uint32_t* coarse_max = amax + cells;
    OCTET_CUDA_CHECK(
        cudaMemsetAsync(coarse_max, 0, size_t(coarse_blocks) * sizeof(uint32_t), stream));
    if (two_level_row_groups(x, rows, cols, group, coarse, plan.two_level.format,
                             multipliers_.data(), coarse_max, out.codes.data(),
                             local.scale_inv.data(), global.scale_inv.data(), stream))
        return;
    block_amax(x, rows, cols, 1, group, gc, amax, cells, stream);
    const float fmt_max = format_max(plan.two_level.format);
    // s_i = amax_i / fmt_max, as the CPU divides; its maximum per coarse block.
    for_each(cells, stream, [=] __device__(int64_t i) {
        const float s = __uint_as_float(amax[i]) / fmt_max;
        amax[i] = __float_as_uint(s);
        atomicMax(coarse_max + (i / gc) / coarse, __float_as_uint(s));
    });
    float *mult = multipliers_.data(), *local_inv = local.scale_inv.data(),
          *global_inv = global.scale_inv.data();
    for_each(cells, stream, [=] __device__(int64_t i) {
        const int64_t r = i / gc;
        const float s = moss_global_scale(__uint_as_float(coarse_max[r / coarse]));
        const TwoLevelScale ts = moss_group_scale(__uint_as_float(amax[i]), s);
        local_inv[i] = ts.local_scale_inv;
        mult[i] = ts.scale;
        if (i % gc == 0 && r % coarse == 0) global_inv[r / coarse] = s;
    });
    cast_by_blocks(x, rows, cols, 1, group, gc, mult, plan.two_level.format, out.codes.data(),
                   stream);
}

bool PlanRunner::run_fixed_measuring_amax(const float* x, int64_t rows, int64_t cols,
                                          const QuantizePlan& plan, DeviceQuantized& out,
                                          cudaStream_t stream) {
    const bool one_block = (plan.block.rows == 0 || plan.block.rows >= rows) &&
                           (plan.block.cols == 0 || plan.block.cols >= cols);
    if (plan.kind != QuantizePlan::Kind::blocks || plan.rule.kind != ScaleRule::Kind::fixed ||
        !one_block)
        return false;
    DeviceScaleGrid& g =
        out.shape_one_level(plan.format, rows, cols, std::max<int64_t>(rows, 1),
                            std::max<int64_t>(cols, 1), plan.encoding, plan.power_of_two_scales());
    amax_.resize(1);
    OCTET_CUDA_CHECK(cudaMemsetAsync(amax_.data(), 0, sizeof(uint32_t), stream));
    const int64_t n = rows * cols;
    if (n == 0) return true;
    const unsigned blocks = std::min(blocks_for(n, elementwise_threads), 4096u);
    const bool vectors = aligned_to(x, 16) && aligned_to(out.codes.data(), 4);
    cast_fixed_with_amax_kernel<<<blocks, elementwise_threads, 0, stream>>>(
        x, n, plan.rule.fixed, plan.format, out.codes.data(), g.scale_inv.data(), amax_.data(),
        vectors);
    OCTET_CUDA_LAUNCHED();
    return true;
}

QuantizePlan PlanRunner::quantize(Quantizer& quantizer, const float* x, int64_t rows, int64_t cols,
                                  DeviceQuantized& out, cudaStream_t stream) {
    if (quantizer.amax_may_follow()) {
        const AmaxReadback::Ticket ticket = readback_.reserve();
        const QuantizePlan plan = quantizer.plan_before_amax(ticket.fetch);
        if (!run_fixed_measuring_amax(x, rows, cols, plan, out, stream)) {
            measure_amax(x, rows * cols, stream); // an empty tensor's amax is 0
            run(x, rows, cols, plan, out, stream);
        }
        readback_.commit(ticket, amax_.data(), stream);
        return plan;
    }
    const float amax = quantizer.needs_tensor_amax() ? tensor_amax(x, rows * cols, stream) : 0.0f;
    const QuantizePlan plan = quantizer.plan(amax);
    run(x, rows, cols, plan, out, stream);
    return plan;
}

} // namespace octet::cuda
