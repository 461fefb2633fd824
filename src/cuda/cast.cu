// Format cast kernels: kernels first, then launchers.
// Grid: one thread per element, grid-stride loop, 256 threads per block.
#include "cuda/cast.h"
#include "cuda/check.h"

namespace octet::cuda {
namespace {

constexpr int threads_per_block = 256;

__global__ void encode_kernel(const float* __restrict__ in, uint16_t* __restrict__ out, int64_t n,
                              Format format, Overflow overflow) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x)
        out[i] = uint16_t(encode(in[i], format, overflow));
}

__global__ void decode_kernel(const uint16_t* __restrict__ in, float* __restrict__ out, int64_t n,
                              Format format) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x)
        out[i] = decode(in[i], format);
}

unsigned grid_for(int64_t n) {
    const int64_t blocks = (n + threads_per_block - 1) / threads_per_block;
    return unsigned(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

} // namespace

void cast_to_format(const float* in, uint16_t* out, int64_t n, Format format, Overflow overflow,
                    cudaStream_t stream) {
    if (n == 0) return;
    encode_kernel<<<grid_for(n), threads_per_block, 0, stream>>>(in, out, n, format, overflow);
    OCTET_CUDA_CHECK(cudaGetLastError());
}

void cast_from_format(const uint16_t* in, float* out, int64_t n, Format format,
                      cudaStream_t stream) {
    if (n == 0) return;
    decode_kernel<<<grid_for(n), threads_per_block, 0, stream>>>(in, out, n, format);
    OCTET_CUDA_CHECK(cudaGetLastError());
}

} // namespace octet::cuda
