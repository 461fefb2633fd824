// Format casts on the GPU with the codec the CPU oracle uses (numerics/formats.h), so device and
// host results are bit-identical by construction; the tests also hold the codec against the
// hardware's own cvt instructions.
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

#include "numerics/formats.h"

namespace octet::cuda {

// out[i] = encode(in[i], format, overflow), in the low 8 or 16 bits. Device pointers.
void cast_to_format(const float* in, uint16_t* out, int64_t n, Format format, Overflow overflow,
                    cudaStream_t stream);

// out[i] = decode(in[i], format). Device pointers.
void cast_from_format(const uint16_t* in, float* out, int64_t n, Format format,
                      cudaStream_t stream);

} // namespace octet::cuda
