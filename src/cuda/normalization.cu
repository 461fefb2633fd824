// LayerNorm and RMSNorm on the GPU: a block per row (forward) or per slice of rows (backward), the
// row held in registers, statistics in FP32 over two passes of the registers (mean, then
// centred variance, as the CPU oracle). Parameter gradients are deterministic column sums.
#include <algorithm>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "cuda/bf16.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {

namespace {

// A block sums 32 columns: warp w adds slices w, w + W, … of each (W warps, coalesced along the
// columns), then lane l of warp 0 adds the W warps' sums of its column in warp order. W grows
// with the slices (one warp per 16, at most 32), so few slices (biases, positions) take small
// blocks and many (norms) spread their loads.
__global__ void column_finish_kernel(float* out, const float* partial, int64_t slices,
                                     int64_t cols) {
    __shared__ float sums[32][33];
    const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32),
              warps = int(blockDim.x / 32);
    const int64_t col = int64_t(blockIdx.x) * 32 + lane;
    float s = 0.0f;
    if (col < cols)
        for (int64_t i = warp; i < slices; i += warps) s += partial[i * cols + col];
    sums[warp][lane] = s;
    __syncthreads();
    if (warp != 0 || col >= cols) return;
    float total = 0.0f;
    for (int w = 0; w < warps; ++w) total += sums[w][lane];
    out[col] += total;
}

} // namespace

void column_finish(float* out, const float* partial, int64_t slices, int64_t cols,
                   cudaStream_t stream) {
    if (cols <= 0) return;
    const int64_t warps = std::clamp<int64_t>(slices / 16, 1, 32);
    column_finish_kernel<<<blocks_for(cols, 32), unsigned(32 * warps), 0, stream>>>(out, partial,
                                                                                    slices, cols);
    OCTET_CUDA_LAUNCHED();
}

int64_t column_sum_scratch(int64_t rows, int64_t cols) {
    return (rows < column_sum_slices ? rows : column_sum_slices) * cols;
}

namespace {

// A row is spread over one block: thread t holds columns t·vec … t·vec + vec − 1, then the same
// blockDim.x · vec further on, and so on (`per` columns in all, in registers), so every row is
// read from memory once, in 16-byte accesses where rows allow it (vec = 4) or one value at a
// time (vec = 1). per = 4 up to 1024 columns, 8 up to 4096 (256 threads at d_model 2048), 16
// beyond, with up to 1024 threads, so at most 64 registers each: beyond 4096 columns the
// backward spills some.
constexpr int64_t max_norm_channels = 16384;
constexpr int64_t norm_backward_slices = 512; // fixed, so the column sums' order is too

struct NormLaunch {
    int per, threads, vec;
};

NormLaunch norm_launch(int64_t c, bool aligned) {
    if (c > max_norm_channels)
        throw Error("normalization over " + std::to_string(c) + " channels: at most " +
                    std::to_string(max_norm_channels) + " are supported");
    const int per = c <= 1024 ? 4 : c <= 4096 ? 8 : 16;
    const int64_t threads = (c + per - 1) / per;
    return {per, int(std::max<int64_t>(32, (threads + 31) / 32 * 32)),
            aligned && c % 4 == 0 ? 4 : 1};
}

// The column of a thread's k-th value.
template <int vec>
__device__ __forceinline__ int64_t column(int k) {
    return (int64_t(threadIdx.x) + int64_t(k / vec) * blockDim.x) * vec + k % vec;
}

// v[k] = row[column(k)], 0 past the row's c columns.
template <int per, int vec, typename T>
__device__ __forceinline__ void load_row(float (&v)[per], const T* row, int64_t c) {
#pragma unroll
    for (int q = 0; q < per / vec; ++q) {
        const int64_t j = column<vec>(q * vec);
        if constexpr (vec == 4) {
            const float4 f = j < c ? load_quad(row + j, 0) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            v[4 * q] = f.x, v[4 * q + 1] = f.y, v[4 * q + 2] = f.z, v[4 * q + 3] = f.w;
        } else {
            v[q] = j < c ? load_as(row + j) : 0.0f;
        }
    }
}

// row[column(k)] = v[k] within the row's c columns.
template <int per, int vec, typename T>
__device__ __forceinline__ void store_row(T* row, const float (&v)[per], int64_t c) {
#pragma unroll
    for (int q = 0; q < per / vec; ++q) {
        const int64_t j = column<vec>(q * vec);
        if (j >= c) continue;
        if constexpr (vec == 4)
            store_quad(row + j, 0, make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]));
        else
            store_as(row + j, v[q]);
    }
}

// LayerNorm (centred) or RMSNorm: out = (x − mean) · rstd · w (+ b), one block per row; `Out` is
// float, or BF16 for a BF16 linear layer's operand (the FP32 value rounded, as a cast would).
template <int per, int vec, bool centred, typename Out>
__global__ void __launch_bounds__(per == 16 ? 1024 : 512)
    norm_forward_kernel(Out* out, float* mean, float* rstd, const float* x, const float* w,
                        const float* b, int64_t c, float eps) {
    const int64_t row = blockIdx.x;
    float v[per], wv[per], bv[per];
    load_row<per, vec>(v, x + row * c, c);
    load_row<per, vec>(wv, w, c);
    if (centred) load_row<per, vec>(bv, b, c);
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < per; ++k) sum += v[k];
    const float m = centred ? block_sum(sum) / float(c) : 0.0f;
    float var = 0.0f;
#pragma unroll
    for (int k = 0; k < per; ++k)
        if (column<vec>(k) < c) var += (v[k] - m) * (v[k] - m);
    const float s = 1.0f / sqrtf(block_sum(var) / float(c) + eps);
#pragma unroll
    for (int k = 0; k < per; ++k)
        v[k] = centred ? (v[k] - m) * s * wv[k] + bv[k] : v[k] * s * wv[k];
    store_row<per, vec>(out + row * c, v, c);
    if (threadIdx.x == 0) {
        if (centred) mean[row] = m;
        rstd[row] = s;
    }
}

// The backward of both norms over a slice of rows per block: d_x += rstd · (dnorm − mean(dnorm)
// − norm · mean(dnorm · norm)) (RMSNorm: no mean(dnorm), norm = x · rstd), and each block's
// partial column sums of d_w = Σ g · norm and d_b = Σ g, which column_finish adds up in
// slice order. One read of d_out (FP32, or a BF16 layer's BF16 dgrad), x and d_x for all three
// gradients. Where d_x_bf16 is given, the new d_x is also written there rounded to BF16: the dy
// operand of the BF16 linear layer whose backward reads the residual stream's gradient next.
template <int per, int vec, bool centred, typename DOut>
__global__ void __launch_bounds__(per == 16 ? 1024 : 512)
    norm_backward_kernel(float* d_x, __nv_bfloat16* d_x_bf16, float* partial_w, float* partial_b,
                         const DOut* d_out, const float* x, const float* w, const float* mean,
                         const float* rstd, int64_t n, int64_t c) {
    const auto [r0, r1] = slice_rows(n, blockIdx.x, gridDim.x);
    float wv[per], dw[per], db[per];
    load_row<per, vec>(wv, w, c);
#pragma unroll
    for (int k = 0; k < per; ++k) dw[k] = db[k] = 0.0f;
    // Each row's loads are issued before the previous row's reduction, whose barriers would
    // otherwise leave the block without a load in flight (1.3B, H100: a step's 49 calls 6.50 ->
    // 5.69 ms); not at 16 values a thread, where the next row's registers would spill.
    constexpr bool ahead = per <= 8;
    float g[per], norm[per], dx[per], m = 0.0f, s = 0.0f;
    const auto load = [&](int64_t row, float(&gr)[per], float(&xr)[per], float(&dxr)[per],
                          float& mr, float& sr) {
        mr = centred ? mean[row] : 0.0f;
        sr = rstd[row];
        load_row<per, vec>(gr, d_out + row * c, c);
        load_row<per, vec>(xr, x + row * c, c);
        load_row<per, vec>(dxr, d_x + row * c, c);
    };
    if (ahead && r0 < r1) load(r0, g, norm, dx, m, s);
    for (int64_t row = r0; row < r1; ++row) {
        if (!ahead) load(row, g, norm, dx, m, s);
        float sum_d = 0.0f, sum_dn = 0.0f;
#pragma unroll
        for (int k = 0; k < per; ++k) {
            norm[k] = column<vec>(k) < c ? (norm[k] - m) * s : 0.0f;
            const float dnorm = g[k] * wv[k];
            sum_d += dnorm;
            sum_dn += dnorm * norm[k];
            dw[k] += g[k] * norm[k];
            db[k] += g[k];
        }
        float g_next[per], x_next[per], dx_next[per], m_next = 0.0f, s_next = 0.0f;
        if (ahead && row + 1 < r1) load(row + 1, g_next, x_next, dx_next, m_next, s_next);
        const float2 sums = block_sum2(sum_d, sum_dn);
        const float mean_d = centred ? sums.x / float(c) : 0.0f, mean_dn = sums.y / float(c);
#pragma unroll
        for (int k = 0; k < per; ++k) dx[k] += s * (g[k] * wv[k] - mean_d - norm[k] * mean_dn);
        store_row<per, vec>(d_x + row * c, dx, c);
        if (d_x_bf16) store_row<per, vec>(d_x_bf16 + row * c, dx, c);
        if constexpr (ahead) {
#pragma unroll
            for (int k = 0; k < per; ++k) g[k] = g_next[k], norm[k] = x_next[k], dx[k] = dx_next[k];
            m = m_next, s = s_next;
        }
    }
    store_row<per, vec>(partial_w + int64_t(blockIdx.x) * c, dw, c);
    if (centred) store_row<per, vec>(partial_b + int64_t(blockIdx.x) * c, db, c);
}

// f(per, vec) with a launch's `per` and `vec` as compile-time constants.
template <typename F>
void with_norm_shape(const NormLaunch& l, F f) {
    const auto with_vec = [&](auto vec) {
        if (l.per == 4)
            f(std::integral_constant<int, 4>{}, vec);
        else if (l.per == 8)
            f(std::integral_constant<int, 8>{}, vec);
        else
            f(std::integral_constant<int, 16>{}, vec);
    };
    if (l.vec == 4)
        with_vec(std::integral_constant<int, 4>{});
    else
        with_vec(std::integral_constant<int, 1>{});
}

template <bool centred, typename Out>
void norm_forward(Out* out, float* mean, float* rstd, const float* x, const float* w,
                  const float* b, int64_t n, int64_t c, double eps, cudaStream_t stream) {
    if (n <= 0) return;
    const NormLaunch l = norm_launch(c, aligned_to(out, 4 * sizeof(Out)) && aligned_to(x, 16) &&
                                            aligned_to(w, 16) && (!centred || aligned_to(b, 16)));
    with_norm_shape(l, [&](auto per, auto vec) {
        norm_forward_kernel<per, vec, centred>
            <<<unsigned(n), l.threads, 0, stream>>>(out, mean, rstd, x, w, b, c, float(eps));
    });
    OCTET_CUDA_LAUNCHED();
}

template <bool centred, typename DOut>
void norm_backward(float* d_x, __nv_bfloat16* d_x_bf16, float* d_w, float* d_b, const DOut* d_out,
                   const float* x, const float* w, const float* mean, const float* rstd, int64_t n,
                   int64_t c, float* scratch, cudaStream_t stream) {
    if (n <= 0) return;
    const NormLaunch l = norm_launch(
        c, aligned_to(d_x, 16) && aligned_to(d_x_bf16, 8) && aligned_to(d_out, 4 * sizeof(DOut)) &&
               aligned_to(x, 16) && aligned_to(w, 16) && aligned_to(scratch, 16));
    const int64_t slices = std::min(n, norm_backward_slices);
    float *partial_w = scratch, *partial_b = scratch + slices * c;
    with_norm_shape(l, [&](auto per, auto vec) {
        norm_backward_kernel<per, vec, centred><<<unsigned(slices), l.threads, 0, stream>>>(
            d_x, d_x_bf16, partial_w, partial_b, d_out, x, w, mean, rstd, n, c);
    });
    OCTET_CUDA_LAUNCHED();
    column_finish(d_w, partial_w, slices, c, stream);
    if (centred) column_finish(d_b, partial_b, slices, c, stream);
}

} // namespace

int64_t norm_backward_scratch(int64_t rows, int64_t cols) {
    return 2 * std::min(rows, norm_backward_slices) * cols;
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t n, int64_t c, double eps, cudaStream_t stream) {
    norm_forward<true>(out, mean, rstd, x, w, b, n, c, eps, stream);
}

void layernorm_forward(__nv_bfloat16* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t n, int64_t c, double eps, cudaStream_t stream) {
    norm_forward<true>(out, mean, rstd, x, w, b, n, c, eps, stream);
}

template <typename DOut>
void layernorm_backward(float* d_x, __nv_bfloat16* d_x_bf16, float* d_w, float* d_b,
                        const DOut* d_out, const float* x, const float* w, const float* mean,
                        const float* rstd, int64_t n, int64_t c, float* scratch,
                        cudaStream_t stream) {
    norm_backward<true>(d_x, d_x_bf16, d_w, d_b, d_out, x, w, mean, rstd, n, c, scratch, stream);
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c,
                     double eps, cudaStream_t stream) {
    norm_forward<false>(out, nullptr, rstd, x, w, nullptr, n, c, eps, stream);
}

void rmsnorm_forward(__nv_bfloat16* out, float* rstd, const float* x, const float* w, int64_t n,
                     int64_t c, double eps, cudaStream_t stream) {
    norm_forward<false>(out, nullptr, rstd, x, w, nullptr, n, c, eps, stream);
}

template <typename DOut>
void rmsnorm_backward(float* d_x, __nv_bfloat16* d_x_bf16, float* d_w, const DOut* d_out,
                      const float* x, const float* w, const float* rstd, int64_t n, int64_t c,
                      float* scratch, cudaStream_t stream) {
    norm_backward<false>(d_x, d_x_bf16, d_w, nullptr, d_out, x, w, nullptr, rstd, n, c, scratch,
                         stream);
}

#define OCTET_NORM_BACKWARDS(DOut)                                                                 \
    template void layernorm_backward<DOut>(float*, __nv_bfloat16*, float*, float*, const DOut*,    \
                                           const float*, const float*, const float*, const float*, \
                                           int64_t, int64_t, float*, cudaStream_t);                \
    template void rmsnorm_backward<DOut>(float*, __nv_bfloat16*, float*, const DOut*,              \
                                         const float*, const float*, const float*, int64_t,        \
                                         int64_t, float*, cudaStream_t);
OCTET_NORM_BACKWARDS(float)
OCTET_NORM_BACKWARDS(__nv_bfloat16)

int64_t bias_backward_scratch(int64_t n, int64_t m) {
    return std::max(column_quad_slices(n, m) * m, column_sum_scratch(n, m));
}

namespace {

// Four columns per thread (16-byte FP32 or 8-byte BF16 loads) where the rows allow it.
template <typename Dy>
void bias_backward_as(float* d_bias, const Dy* d_out, int64_t n, int64_t m, float* scratch,
                      cudaStream_t stream) {
    if (n <= 0 || m <= 0) return;
    if (m % 4 == 0 && aligned_to(d_out, 4 * sizeof(Dy)) && aligned_to(scratch, 16)) {
        column_quad_sum(d_bias, n, m, scratch, stream, [=] __device__(int64_t r, int64_t q) {
            return load_quad(d_out + r * m, q);
        });
    } else {
        column_sum(d_bias, n, m, scratch, stream,
                   [=] __device__(int64_t i, int64_t j) { return load_as(d_out + i * m + j); });
    }
    OCTET_CUDA_LAUNCHED();
}

} // namespace

void bias_backward(float* d_bias, const float* d_out, int64_t n, int64_t m, float* scratch,
                   cudaStream_t stream) {
    bias_backward_as(d_bias, d_out, n, m, scratch, stream);
}

void bias_backward(float* d_bias, const __nv_bfloat16* d_out, int64_t n, int64_t m, float* scratch,
                   cudaStream_t stream) {
    bias_backward_as(d_bias, d_out, n, m, scratch, stream);
}

} // namespace octet::cuda
