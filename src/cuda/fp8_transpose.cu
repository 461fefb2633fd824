// Transposes of device quantized tensors (see fp8_transpose.h).
#include "cuda/fp8_transpose.h"

#include "common/error.h"
#include "cuda/launch.cuh"
#include "cuda/quantize.h"
#include "cuda/quantize_quad.cuh"
#include "cuda/reduce.cuh"
#include "cuda/source_tile.cuh"
#include "cuda/tiled_transpose.cuh"
#include "cuda/transpose.h"

namespace octet::cuda {
namespace {

// Transposes from the source through shared-memory tiles, for plans along the new rows (the old
// columns) of 1×128 blocks (block-wise recipes) or of one scale per row (row-wise recipes): a
// block loads a 128 × 64 tile of the FP32 source, then each warp takes whole columns of it (new
// rows), lane l holding the values of rows l, l+32, l+64, l+96, and quantizes them by the plan:
// the same amaxes, rule and cast as PlanRunner::run on the transposed source, so the same codes
// and scales. A 1×128 block is one tile's column: one pass, the source read once and the codes
// written once. A whole new row spans every tile of a column: column_amax_kernel finds its amax
// first, in a pass of its own.
__global__ void column_amax_kernel(const float* source, int64_t rows, int64_t cols,
                                   uint32_t* column_amax) {
    __shared__ SourceTile tile;
    const TileOrigin o = load_source_tile(tile, source, rows, cols);
    for_each_tile_column(o, cols, [&](int cc, int lane) {
        float amax = 0.0f;
        for (int rr = lane; rr < source_tile_rows && o.r0 + rr < rows; rr += 32)
            amax = finite_amax(amax, tile.value[rr][cc]);
        amax = warp_max(amax);
        if (lane == 0) atomicMax(column_amax + o.c0 + cc, __float_as_uint(amax));
    });
}

template <bool whole_rows>
__global__ void quantize_transposed_kernel(const float* source, int64_t rows, int64_t cols,
                                           const uint32_t* column_amax, ScaleRule rule,
                                           Format out_format, uint8_t* out_codes,
                                           float* out_scale_inv, int64_t out_grid_cols) {
    __shared__ SourceTile tile;
    const TileOrigin o = load_source_tile(tile, source, rows, cols);
    constexpr int parts = source_tile_rows / 32;
    static_assert(parts == 4, "a lane's codes fill one 32-bit word");
    for_each_tile_column(o, cols, [&](int cc, int lane) {
        const int64_t c = o.c0 + cc;
        float v[parts], amax = 0.0f;
        for (int j = 0; j < parts; ++j) {
            v[j] = tile.value[lane + 32 * j][cc];
            if (o.r0 + lane + 32 * j < rows) amax = finite_amax(amax, v[j]);
        }
        const BlockScale s = rule(whole_rows ? __uint_as_float(column_amax[c]) : warp_max(amax));
        if (lane == 0 && (!whole_rows || o.r0 == 0))
            out_scale_inv[c * out_grid_cols + (whole_rows ? 0 : o.r0 / 128)] = s.scale_inv;
        // byte j: the code of row lane + 32 j
        const uint32_t packed = cast_scaled_packed(v[0], v[1], v[2], v[3], s.scale, out_format);
        uint8_t* out_row = out_codes + c * rows + o.r0;
        if (rows % 4 == 0 && o.r0 + source_tile_rows <= rows) {
            // Lane l stores rows 4l … 4l + 3 as one word: row 4l + k is byte l / 8 of the lane
            // (4l + k) mod 32. A warp then writes 128 contiguous bytes in one instruction.
            uint32_t word = 0;
            for (int k = 0; k < 4; ++k) {
                const uint32_t held = __shfl_sync(0xFFFFFFFFu, packed, (4 * lane + k) & 31);
                word |= ((held >> (8 * (lane / 8))) & 0xFFu) << (8 * k);
            }
            reinterpret_cast<uint32_t*>(out_row)[lane] = word;
        } else {
            for (int j = 0; j < parts; ++j)
                if (o.r0 + lane + 32 * j < rows)
                    out_row[lane + 32 * j] = uint8_t(packed >> (8 * j));
        }
    });
}

// Exact transposes of FP8 codes, a word (4 codes) per access. A block of 256 threads moves a
// 128 × 128 tile: lane l of warp w loads the 4 × 4 squares at word column l of row quads w,
// w + 8, …, transposes each in registers with byte permutes, and stores its 4 words (4 new rows,
// 4 old rows each) in shared memory; then each warp writes whole new rows, 128 contiguous bytes
// per instruction. The shared words are XOR-swizzled by new row / 4, so neither phase has bank
// conflicts. Needs rows and cols multiples of 4: a square then lies wholly inside or outside.
constexpr int code_tile = 128, code_tile_words = code_tile / 4, code_tile_warps = 8;

__global__ void transpose_codes_kernel(const uint8_t* in, int64_t rows, int64_t cols,
                                       uint8_t* out) {
    __shared__ uint32_t tile[code_tile][code_tile_words]; // [new row in tile][swizzled word]
    const int64_t r0 = int64_t(blockIdx.y) * code_tile, c0 = int64_t(blockIdx.x) * code_tile;
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
    constexpr int quads = code_tile_words / code_tile_warps;
    const int64_t c = c0 + 4 * lane;
    uint32_t w[quads][4];
#pragma unroll
    for (int k = 0; k < quads; ++k) {
        const int64_t r = r0 + 4 * (warp + code_tile_warps * k);
#pragma unroll
        for (int i = 0; i < 4; ++i)
            w[k][i] = r < rows && c < cols
                          ? *reinterpret_cast<const uint32_t*>(in + (r + i) * cols + c)
                          : 0u;
    }
#pragma unroll
    for (int k = 0; k < quads; ++k) {
        // a, b: bytes 0 and 1 of rows (0, 1) and (2, 3) interleaved; e, f: bytes 2 and 3.
        const uint32_t a = __byte_perm(w[k][0], w[k][1], 0x5140),
                       b = __byte_perm(w[k][2], w[k][3], 0x5140),
                       e = __byte_perm(w[k][0], w[k][1], 0x7362),
                       f = __byte_perm(w[k][2], w[k][3], 0x7362);
        const int q = warp + code_tile_warps * k;
        tile[4 * lane + 0][q ^ lane] = __byte_perm(a, b, 0x5410);
        tile[4 * lane + 1][q ^ lane] = __byte_perm(a, b, 0x7632);
        tile[4 * lane + 2][q ^ lane] = __byte_perm(e, f, 0x5410);
        tile[4 * lane + 3][q ^ lane] = __byte_perm(e, f, 0x7632);
    }
    __syncthreads();
    for (int j = warp; j < code_tile; j += code_tile_warps) {
        const int64_t new_row = c0 + j, r = r0 + 4 * lane;
        if (new_row < cols && r < rows)
            *reinterpret_cast<uint32_t*>(out + new_row * rows + r) = tile[j][lane ^ (j / 4)];
    }
}

} // namespace

template <typename T>
static void transpose_matrix(const T* in, int64_t rows, int64_t cols, T* out, cudaStream_t stream) {
    tiled_transpose(rows, cols, out, stream,
                    [=] __device__(int64_t r, int64_t c) { return in[r * cols + c]; });
}

void transpose_codes(const uint8_t* in, int64_t rows, int64_t cols, uint8_t* out,
                     cudaStream_t stream) {
    if (rows <= 0 || cols <= 0) return;
    if (rows % 4 != 0 || cols % 4 != 0 || !aligned_to(in, 4) || !aligned_to(out, 4))
        return transpose_matrix(in, rows, cols, out, stream);
    const dim3 grid(blocks_for(cols, code_tile), blocks_for(rows, code_tile));
    transpose_codes_kernel<<<grid, code_tile_warps * 32, 0, stream>>>(in, rows, cols, out);
    OCTET_CUDA_LAUNCHED();
}

void Fp8Transposer::run(const DeviceQuantized& in, TransposeMethod method, Quantizer& requantizer,
                        const float* source, DeviceQuantized& out, cudaStream_t stream) {
    switch (method) {
    case TransposeMethod::exact:
        exact(in, out, stream);
        return;
    case TransposeMethod::scaling_aware:
        scaling_aware(in, out, stream);
        return;
    default:
        from_source(source, in.rows, in.cols, requantizer, out, stream);
    }
}

void Fp8Transposer::from_source(const float* source, int64_t rows, int64_t cols,
                                Quantizer& requantizer, DeviceQuantized& out, cudaStream_t stream) {
    const auto transposed_copy = [&] {
        scratch_.resize(rows * cols);
        transpose_matrix(source, rows, cols, scratch_.data(), stream);
        return scratch_.data();
    };
    if (requantizer.needs_tensor_amax()) {
        runner_.quantize(requantizer, transposed_copy(), cols, rows, out, stream);
        return;
    }
    const QuantizePlan plan = requantizer.plan(0.0f);
    // The plan's blocks along the transposed tensor's rows, which are `rows` long.
    const bool blocks_1x128 = plan.block.cols == 128,
               whole_rows = plan.block.cols == 0 || plan.block.cols == rows;
    if (plan.kind != QuantizePlan::Kind::blocks || plan.block.rows != 1 ||
        !(blocks_1x128 || whole_rows)) {
        runner_.run(transposed_copy(), cols, rows, plan, out, stream);
        return;
    }
    DeviceScaleGrid& g = out.shape_one_level(plan.format, cols, rows, 1,
                                             whole_rows ? std::max<int64_t>(rows, 1) : 128,
                                             plan.encoding, plan.power_of_two_scales());
    if (rows * cols == 0) return;
    const dim3 grid = source_tile_grid(rows, cols);
    if (blocks_1x128 && !whole_rows) {
        quantize_transposed_kernel<false><<<grid, source_tile_threads, 0, stream>>>(
            source, rows, cols, nullptr, plan.rule, plan.format, out.codes.data(),
            g.scale_inv.data(), g.grid_cols);
        OCTET_CUDA_LAUNCHED();
        return;
    }
    column_amax_.resize(cols);
    OCTET_CUDA_CHECK(cudaMemsetAsync(column_amax_.data(), 0, column_amax_.bytes(), stream));
    column_amax_kernel<<<grid, source_tile_threads, 0, stream>>>(source, rows, cols,
                                                                 column_amax_.data());
    OCTET_CUDA_LAUNCHED();
    quantize_transposed_kernel<true><<<grid, source_tile_threads, 0, stream>>>(
        source, rows, cols, column_amax_.data(), plan.rule, plan.format, out.codes.data(),
        g.scale_inv.data(), g.grid_cols);
    OCTET_CUDA_LAUNCHED();
}

namespace {

// The finite amax of a tensor, or of an activation's output (quantize.h).
template <typename T>
void source_finite_amax(const T* x, int64_t rows, int64_t cols, uint32_t* amax_bits,
                        cudaStream_t stream) {
    tensor_finite_amax(x, rows * cols, amax_bits, stream);
}

void source_finite_amax(const ElementwiseSource& x, int64_t rows, int64_t cols, uint32_t* amax_bits,
                        cudaStream_t stream) {
    tensor_finite_amax(x, rows, cols, amax_bits, stream);
}

} // namespace

template <typename Source>
bool Fp8Transposer::quantize_both_from(Quantizer& rowwise, Quantizer& columnwise, const Source& x,
                                       int64_t rows, int64_t cols, DeviceQuantized& out,
                                       DeviceQuantized& out_t, cudaStream_t stream,
                                       float* column_sums) {
    if (rows <= 0 || cols <= 0 || !quantizes_both_in_one_pass(rowwise, columnwise)) return false;
    const QuantizePlan plan = rowwise.plan(0.0f), plan_t = columnwise.plan(0.0f);
    const int64_t row_tiles = (rows + 127) / 128;
    if (column_sums) tile_sums_.resize(row_tiles * cols);
    BothOrientationsArgs args{rows,          cols,    0,       plan.rule,
                              plan.format,   nullptr, nullptr, plan_t.rule,
                              plan_t.format, nullptr, nullptr};
    args.column_sums = column_sums ? tile_sums_.data() : nullptr;
    if (plan.kind == QuantizePlan::Kind::two_level) {
        args.group = int(plan.two_level.group);
        // Both copies share the global scale, one for the tensor (global_rows = 0).
        out.shape_two_level(rows, cols, plan.two_level);
        out_t.shape_two_level(cols, rows, plan_t.two_level);
        tensor_amax_.resize(1);
        source_finite_amax(x, rows, cols, tensor_amax_.data(), stream);
        args.tensor_amax = tensor_amax_.data();
        args.global_scale_inv = out.levels[1].scale_inv.data();
        args.global_scale_inv_t = out_t.levels[1].scale_inv.data();
    } else {
        args.group = int(plan.block.cols);
        out.shape_one_level(plan.format, rows, cols, 1, args.group, plan.encoding,
                            plan.power_of_two_scales());
        out_t.shape_one_level(plan_t.format, cols, rows, 1, args.group, plan_t.encoding,
                              plan_t.power_of_two_scales());
    }
    args.codes = out.codes.data();
    args.scale_inv = out.levels[0].scale_inv.data();
    args.codes_t = out_t.codes.data();
    args.scale_inv_t = out_t.levels[0].scale_inv.data();
    quantize_both_orientations(x, args, stream);
    if (column_sums) column_finish(column_sums, tile_sums_.data(), row_tiles, cols, stream);
    return true;
}

template bool Fp8Transposer::quantize_both_from(Quantizer&, Quantizer&, const float* const&,
                                                int64_t, int64_t, DeviceQuantized&,
                                                DeviceQuantized&, cudaStream_t, float*);
template bool Fp8Transposer::quantize_both_from(Quantizer&, Quantizer&, const __nv_bfloat16* const&,
                                                int64_t, int64_t, DeviceQuantized&,
                                                DeviceQuantized&, cudaStream_t, float*);
template bool Fp8Transposer::quantize_both_from(Quantizer&, Quantizer&, const ElementwiseSource&,
                                                int64_t, int64_t, DeviceQuantized&,
                                                DeviceQuantized&, cudaStream_t, float*);

void Fp8Transposer::exact(const DeviceQuantized& in, DeviceQuantized& out, cudaStream_t stream) {
    out.format = in.format;
    out.rows = in.cols;
    out.cols = in.rows;
    out.codes.resize(in.numel());
    transpose_codes(in.codes.data(), in.rows, in.cols, out.codes.data(), stream);
    out.level_count = in.level_count;
    for (int i = 0; i < in.level_count; ++i) {
        const DeviceScaleGrid& g = in.levels[size_t(i)];
        DeviceScaleGrid& t = out.levels[size_t(i)];
        t.block_rows = g.block_cols;
        t.block_cols = g.block_rows;
        t.grid_rows = g.grid_cols;
        t.grid_cols = g.grid_rows;
        t.encoding = g.encoding;
        t.pow2 = g.pow2;
        t.scale_inv.resize(g.scale_inv.size());
        transpose_matrix(g.scale_inv.data(), g.grid_rows, g.grid_cols, t.scale_inv.data(), stream);
    }
}

// The scaling-aware transpose for any G, in two passes over global memory.
static void scaling_aware_any_group(const DeviceQuantized& in, Buffer<uint32_t>& tile_buffer,
                                    DeviceQuantized& out, cudaStream_t stream) {
    const DeviceScaleGrid& g = in.levels[0];
    const int64_t group = g.block_cols, rows = in.rows, cols = in.cols, gc = g.grid_cols;
    // Pass 1: t of each G×G tile, the largest scale among its rows whose group holds a non-zero.
    uint32_t* tiles = tile_buffer.data();
    OCTET_CUDA_CHECK(cudaMemsetAsync(tiles, 0, tile_buffer.bytes(), stream));
    const uint8_t* codes = in.codes.data();
    const float* scale_inv = g.scale_inv.data();
    for_each(rows * gc, stream, [=] __device__(int64_t i) {
        const int64_t r = i / gc, cg = i % gc, c1 = min(cols, (cg + 1) * group);
        bool nonzero = false;
        for (int64_t c = cg * group; c < c1 && !nonzero; ++c)
            nonzero = (codes[r * cols + c] & 0x7F) != 0;
        if (nonzero) atomicMax(tiles + (r / group) * gc + cg, __float_as_uint(scale_inv[i]));
    });
    // Pass 2: each code shifted from its row's scale to its tile's, written transposed.
    const Format format = in.format;
    uint8_t* out_codes = out.codes.data();
    tiled_transpose(rows, cols, out_codes, stream, [=] __device__(int64_t r, int64_t c) {
        const float tile = __uint_as_float(tiles[(r / group) * gc + c / group]);
        const int shift = min(
            floor_log2(tile > 0.0f ? tile : 1.0f) - floor_log2(scale_inv[r * gc + c / group]), 40);
        const uint8_t code = codes[r * cols + c];
        return uint8_t(encode(decode(code, format) * exp2i(-shift), format, Overflow::ieee));
    });
    float* out_scales = out.levels[0].scale_inv.data();
    const int64_t out_gc = out.levels[0].grid_cols;
    for_each(cols * out_gc, stream, [=] __device__(int64_t i) {
        const float tile = __uint_as_float(tiles[(i % out_gc) * gc + (i / out_gc) / group]);
        out_scales[i] = tile > 0.0f ? tile : 1.0f;
    });
}

void Fp8Transposer::scaling_aware(const DeviceQuantized& in, DeviceQuantized& out,
                                  cudaStream_t stream) {
    const DeviceScaleGrid& g = in.levels[0];
    if (in.level_count != 1 || g.block_rows != 1 || !g.pow2)
        throw Error("scaling-aware transpose needs one level of power-of-two 1xG groups");
    const int64_t group = g.block_cols, rows = in.rows, cols = in.cols, gc = g.grid_cols;
    DeviceScaleGrid& t = out.shape_one_level(in.format, cols, rows, 1, group, g.encoding, true);
    if (in.numel() == 0) return;
    if (group == 128) {
        transpose_scaling_aware({in.codes.data(), g.scale_inv.data(), rows, cols, in.format,
                                 out.codes.data(), t.scale_inv.data()},
                                stream);
        return;
    }
    tiles_.resize(((rows + group - 1) / group) * gc);
    scaling_aware_any_group(in, tiles_, out, stream);
}

} // namespace octet::cuda
