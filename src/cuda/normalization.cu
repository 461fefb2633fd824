// LayerNorm and RMSNorm on the GPU: one warp per row, statistics in FP32 over two passes (mean,
// then centred variance, as the CPU oracle). Parameter gradients are deterministic column sums.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"

namespace octet::cuda {

__global__ void column_finish_kernel(float* out, const float* partial, int64_t slices,
                                     int64_t cols) {
    const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    float s = 0.0f;
    for (int64_t i = 0; i < slices; ++i) s += partial[i * cols + col];
    out[col] += s;
}

int64_t column_sum_scratch(int64_t rows, int64_t cols) {
    return (rows < column_sum_slices ? rows : column_sum_slices) * cols;
}

namespace {

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* x,
                                         const float* w, const float* b, int64_t n, int64_t c,
                                         float eps) {
    const RowWarp r = row_warp();
    if (r.row >= n) return;
    const float* xi = x + r.row * c;
    float sum = 0.0f;
    for (int64_t j = r.lane; j < c; j += 32) sum += xi[j];
    const float m = warp_sum(sum) / float(c);
    float var = 0.0f;
    for (int64_t j = r.lane; j < c; j += 32) var += (xi[j] - m) * (xi[j] - m);
    const float s = 1.0f / sqrtf(warp_sum(var) / float(c) + eps);
    for (int64_t j = r.lane; j < c; j += 32) out[r.row * c + j] = (xi[j] - m) * s * w[j] + b[j];
    if (r.lane == 0) {
        mean[r.row] = m;
        rstd[r.row] = s;
    }
}

__global__ void layernorm_backward_kernel(float* d_x, const float* d_out, const float* x,
                                          const float* w, const float* mean, const float* rstd,
                                          int64_t n, int64_t c) {
    const RowWarp r = row_warp();
    if (r.row >= n) return;
    const float* g = d_out + r.row * c;
    const float* xi = x + r.row * c;
    const float m = mean[r.row], s = rstd[r.row];
    float mean_d = 0.0f, mean_dn = 0.0f;
    for (int64_t j = r.lane; j < c; j += 32) {
        const float dnorm = g[j] * w[j];
        mean_d += dnorm;
        mean_dn += dnorm * (xi[j] - m) * s;
    }
    mean_d = warp_sum(mean_d) / float(c);
    mean_dn = warp_sum(mean_dn) / float(c);
    for (int64_t j = r.lane; j < c; j += 32) {
        const float norm = (xi[j] - m) * s;
        d_x[r.row * c + j] += s * (g[j] * w[j] - mean_d - norm * mean_dn);
    }
}

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* x, const float* w,
                                       int64_t n, int64_t c, float eps) {
    const RowWarp r = row_warp();
    if (r.row >= n) return;
    const float* xi = x + r.row * c;
    float ss = 0.0f;
    for (int64_t j = r.lane; j < c; j += 32) ss += xi[j] * xi[j];
    const float s = 1.0f / sqrtf(warp_sum(ss) / float(c) + eps);
    for (int64_t j = r.lane; j < c; j += 32) out[r.row * c + j] = xi[j] * s * w[j];
    if (r.lane == 0) rstd[r.row] = s;
}

__global__ void rmsnorm_backward_kernel(float* d_x, const float* d_out, const float* x,
                                        const float* w, const float* rstd, int64_t n, int64_t c) {
    const RowWarp r = row_warp();
    if (r.row >= n) return;
    const float* g = d_out + r.row * c;
    const float* xi = x + r.row * c;
    const float s = rstd[r.row];
    float mean_dn = 0.0f;
    for (int64_t j = r.lane; j < c; j += 32) mean_dn += g[j] * w[j] * xi[j] * s;
    mean_dn = warp_sum(mean_dn) / float(c);
    for (int64_t j = r.lane; j < c; j += 32)
        d_x[r.row * c + j] += s * (g[j] * w[j] - xi[j] * s * mean_dn);
}

} // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t n, int64_t c, double eps, cudaStream_t stream) {
    layernorm_forward_kernel<<<blocks_for(n, rows_per_block), rows_per_block * 32, 0, stream>>>(
        out, mean, rstd, x, w, b, n, c, float(eps));
    OCTET_CUDA_LAUNCHED();
}

void layernorm_backward(float* d_x, float* d_w, float* d_b, const float* d_out, const float* x,
                        const float* w, const float* mean, const float* rstd, int64_t n, int64_t c,
                        float* scratch, cudaStream_t stream) {
    layernorm_backward_kernel<<<blocks_for(n, rows_per_block), rows_per_block * 32, 0, stream>>>(
        d_x, d_out, x, w, mean, rstd, n, c);
    OCTET_CUDA_LAUNCHED();
    column_sum(d_w, n, c, scratch, stream, [=] __device__(int64_t i, int64_t j) {
        return d_out[i * c + j] * (x[i * c + j] - mean[i]) * rstd[i];
    });
    bias_backward(d_b, d_out, n, c, scratch, stream);
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c,
                     double eps, cudaStream_t stream) {
    rmsnorm_forward_kernel<<<blocks_for(n, rows_per_block), rows_per_block * 32, 0, stream>>>(
        out, rstd, x, w, n, c, float(eps));
    OCTET_CUDA_LAUNCHED();
}

void rmsnorm_backward(float* d_x, float* d_w, const float* d_out, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t c, float* scratch,
                      cudaStream_t stream) {
    rmsnorm_backward_kernel<<<blocks_for(n, rows_per_block), rows_per_block * 32, 0, stream>>>(
        d_x, d_out, x, w, rstd, n, c);
    OCTET_CUDA_LAUNCHED();
    column_sum(d_w, n, c, scratch, stream, [=] __device__(int64_t i, int64_t j) {
        return d_out[i * c + j] * x[i * c + j] * rstd[i];
    });
    OCTET_CUDA_LAUNCHED();
}

void bias_backward(float* d_bias, const float* d_out, int64_t n, int64_t m, float* scratch,
                   cudaStream_t stream) {
    column_sum(d_bias, n, m, scratch, stream,
               [=] __device__(int64_t i, int64_t j) { return d_out[i * m + j]; });
    OCTET_CUDA_LAUNCHED();
}

} // namespace octet::cuda
