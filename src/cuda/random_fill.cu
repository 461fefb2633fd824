// Random fill kernel (see random_fill.h): a splitmix64 hash of (seed, index) per element, encoded
// with the shared codec. Grid-stride loop, 256 threads per block.
#include "cuda/check.h"
#include "cuda/random_fill.h"

namespace octet::cuda {
namespace {

__global__ void fill_kernel(uint8_t* out, int64_t n, Format format, float range, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        uint64_t z = seed + uint64_t(i) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const float u = float(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f; // uniform in [-1, 1)
        const uint32_t code = encode(u * range, format, Overflow::saturate);
        if (format == Format::bf16 || format == Format::fp16) {
            out[2 * i] = uint8_t(code);
            out[2 * i + 1] = uint8_t(code >> 8);
        } else {
            out[i] = uint8_t(code);
        }
    }
}

} // namespace

void fill_random(void* data, int64_t n, Format format, float range, uint64_t seed,
                 cudaStream_t stream) {
    if (n == 0) return;
    fill_kernel<<<1024, 256, 0, stream>>>(static_cast<uint8_t*>(data), n, format, range, seed);
    OCTET_CUDA_CHECK(cudaGetLastError());
}

} // namespace octet::cuda
