// Random operands for GPU benchmarks: realistic bit patterns keep the tensor cores' power, and so
// their clocks, honest (constant operands run faster than real data).
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

#include "numerics/formats.h"

namespace octet::cuda {

// Fills n elements of `format` (8-bit codes or BF16) with values uniform in ±range, from `seed`.
void fill_random(void* data, int64_t n, Format format, float range, uint64_t seed,
                 cudaStream_t stream);

} // namespace octet::cuda
