// OCTET_HD marks functions compiled for both the host and the device, so the CPU oracle and the
// CUDA kernels share one definition of every format conversion and scale rule (bit-exact
// agreement).
#pragma once

#if defined(__CUDACC__)
#define OCTET_HD __host__ __device__ __forceinline__
#else
#define OCTET_HD inline
#endif
