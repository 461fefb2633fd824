// Hopper (sm_90a) instructions as small device functions, for kernels written against the
// hardware directly (cuda/microscaled_gemm.cu): mbarriers, TMA tile loads, WGMMA with operands in
// shared memory, register reallocation. Each wraps one PTX instruction (see the PTX ISA, 9.7.9.24
// for TMA, 9.7.15 for WGMMA), so the kernels read as the pipeline they are.
#pragma once

#include <cstdint>
#include <cuda.h>

namespace octet::cuda::hopper {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// --- mbarriers (64-bit, in shared memory) ---

// Barriers are named by their shared-memory address (shared_address()), computed once: the
// conversion from a generic pointer costs instructions in every loop that waits.
__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(arrivals));
}

// Makes initialised barriers visible to the async proxy (TMA) before any thread uses them.
__device__ __forceinline__ void fence_barrier_init() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

// Arrives and adds `bytes` to the transactions the current phase waits for (TMA completes them).
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
                 : "memory");
}

// Blocks until the phase with this parity has completed.
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    do {
        asm volatile("{\n"
                     ".reg .pred ready;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 ready, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, ready;\n"
                     "}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}

// Waits until `threads` threads (a multiple of 32) have arrived at barrier `id` (1–15: 0 is
// __syncthreads'), so that one warpgroup can synchronise without the others.
__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t threads) {
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// --- TMA ---

__device__ __forceinline__ void prefetch_tensor_map(const CUtensorMap* map) {
    asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// The box of `map` at (inner, outer) into shared memory, completing on `bar`. Elements outside
// the tensor arrive as zeros and count towards the transaction bytes.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, uint32_t bar,
                                            int32_t inner, int32_t outer) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4}], [%2];" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(inner), "r"(outer)
                 : "memory");
}

// --- register reallocation between warpgroups ---

template <uint32_t registers>
__device__ __forceinline__ void release_registers() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(registers));
}

template <uint32_t registers>
__device__ __forceinline__ void claim_registers() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(registers));
}

// --- WGMMA ---

// The descriptor of a K-major operand tile in shared memory with 128-byte rows, as TMA writes it
// with CU_TENSOR_MAP_SWIZZLE_128B: 8-row atoms of 1024 bytes (the stride between them), 128B
// swizzle. `address` may be 16·i bytes into a row: the hardware swizzles absolute addresses, so
// advancing along K is advancing the start address (atoms stay 1024-byte aligned).
__device__ __forceinline__ uint64_t k_major_sw128_descriptor(uint32_t address) {
    const uint64_t start = (address & 0x3FFFF) >> 4;
    constexpr uint64_t leading = 1;        // unused by swizzled K-major layouts
    constexpr uint64_t stride = 1024 >> 4; // 8 rows × 128 bytes
    constexpr uint64_t swizzle_128b = 1;
    return start | leading << 16 | stride << 32 | swizzle_128b << 62;
}

// The descriptor of the tile `bytes` (a multiple of 16) further on: the start address is the low
// 14 bits, in units of 16 bytes, and shared memory (< 256 KB) never carries out of them.
__device__ __forceinline__ uint64_t advance_descriptor(uint64_t descriptor, uint32_t bytes) {
    return descriptor + (bytes >> 4);
}

// Orders this warpgroup's register accesses before the WGMMAs that follow.
__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

// Waits until at most `pending` committed groups of this warpgroup are still running.
template <int pending>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(pending) : "memory");
}

// Keeps the compiler from moving accesses of accumulator registers across an asynchronous WGMMA.
template <int count>
__device__ __forceinline__ void fence_registers(float (&d)[count]) {
#pragma unroll
    for (int i = 0; i < count; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#define OCTET_WGMMA_ACC8(c, i)                                                                     \
    c(d[i]), c(d[i + 1]), c(d[i + 2]), c(d[i + 3]), c(d[i + 4]), c(d[i + 5]), c(d[i + 6]),         \
        c(d[i + 7])
#define OCTET_WGMMA_ACC64(c)                                                                       \
    OCTET_WGMMA_ACC8(c, 0), OCTET_WGMMA_ACC8(c, 8), OCTET_WGMMA_ACC8(c, 16),                       \
        OCTET_WGMMA_ACC8(c, 24), OCTET_WGMMA_ACC8(c, 32), OCTET_WGMMA_ACC8(c, 40),                 \
        OCTET_WGMMA_ACC8(c, 48), OCTET_WGMMA_ACC8(c, 56)
#define OCTET_WGMMA_M64N128K32_ASM(atype, btype, scale_d)                                          \
    "{\n.reg .pred p;\nsetp.ne.b32 p, " scale_d ", 0;\n"                                           \
    "wgmma.mma_async.sync.aligned.m64n128k32.f32." atype "." btype " "                             \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "  \
    "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "   \
    "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "   \
    "%56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1;\n}\n"

// d[64×128] += a[64×32] · b[128×32]ᵀ (name) or d = a · bᵀ (name##_overwrite), FP8 operands from
// shared memory, FP32 accumulators in the fragment layout of the PTX ISA: thread t of the
// warpgroup holds rows 16·(t/32) + (t%32)/4 and 8 below it, columns 8j + 2·(t%4) and the next.
// The overwriting form ignores d's old values (scale-d 0) but still declares them read: output
// only, ptxas may give d fresh registers and issue the WGMMA while the old values are still being
// read, which keeps two sets alive (and spilled, in cuda/microscaled_gemm.cu).
#define OCTET_WGMMA_M64N128K32(name, atype, btype)                                                 \
    __device__ __forceinline__ void name(float(&d)[64], uint64_t a, uint64_t b) {                  \
        asm volatile(OCTET_WGMMA_M64N128K32_ASM(atype, btype, "1")                                 \
                     : OCTET_WGMMA_ACC64("+f")                                                     \
                     : "l"(a), "l"(b));                                                            \
    }                                                                                              \
    __device__ __forceinline__ void name##_overwrite(float(&d)[64], uint64_t a, uint64_t b) {      \
        asm volatile(OCTET_WGMMA_M64N128K32_ASM(atype, btype, "0")                                 \
                     : OCTET_WGMMA_ACC64("+f")                                                     \
                     : "l"(a), "l"(b));                                                            \
    }

OCTET_WGMMA_M64N128K32(wgmma_m64n128k32_e4m3_e4m3, "e4m3", "e4m3")
OCTET_WGMMA_M64N128K32(wgmma_m64n128k32_e5m2_e4m3, "e5m2", "e4m3")

#undef OCTET_WGMMA_M64N128K32
#undef OCTET_WGMMA_M64N128K32_ASM
#undef OCTET_WGMMA_ACC64
#undef OCTET_WGMMA_ACC8

} // namespace octet::cuda::hopper
