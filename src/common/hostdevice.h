// OCTET_HD marks functions compiled for both the host and the device, so the CPU oracle and the
// CUDA kernels share one definition of every format conversion and scale rule (bit-exact
// agreement).
#pragma once

//
// OCTET_HD_OUTLINED marks the rare branches that kernels should call rather than inline, so that
// a kernel inlining a conversion many times does not carry many copies of them.
#if defined(__CUDACC__)
#define OCTET_HD __host__ __device__ __forceinline__
#define OCTET_HD_OUTLINED inline __host__ __device__ __noinline__
#else
#define OCTET_HD inline
#define OCTET_HD_OUTLINED inline
#endif
