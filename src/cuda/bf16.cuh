// FP32 results stored as BF16 (round to nearest even, as __float2bfloat16_rn) and read back: one
// value, or four through 8-byte accesses. For kernels that write a BF16 layer's operand directly,
// or read its output (ops.h's `producer`): the same code for FP32 and BF16 through overloads.
#pragma once

#include <cstdint>
#include <cuda_bf16.h>

namespace octet::cuda {

__device__ __forceinline__ void store_as(float* p, float v) {
    *p = v;
}

__device__ __forceinline__ void store_as(__nv_bfloat16* p, float v) {
    *p = __float2bfloat16_rn(v);
}

// Two values rounded to BF16, packed low then high.
__device__ __forceinline__ uint32_t bf16_pair(float lo, float hi) {
    return uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
           uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16;
}

__device__ __forceinline__ uint2 bf16_quad(float4 v) {
    return make_uint2(bf16_pair(v.x, v.y), bf16_pair(v.z, v.w));
}

// Values 4q … 4q + 3 of `p`, in one 16-byte (FP32) or 8-byte (BF16) store.
__device__ __forceinline__ void store_quad(float* p, int64_t q, float4 v) {
    reinterpret_cast<float4*>(p)[q] = v;
}

__device__ __forceinline__ void store_quad(__nv_bfloat16* p, int64_t q, float4 v) {
    reinterpret_cast<uint2*>(p)[q] = bf16_quad(v);
}

__device__ __forceinline__ float4 float_quad(uint2 bits) {
    return make_float4(__uint_as_float(bits.x << 16), __uint_as_float(bits.x & 0xFFFF0000u),
                       __uint_as_float(bits.y << 16), __uint_as_float(bits.y & 0xFFFF0000u));
}

__device__ __forceinline__ float load_as(const float* p) {
    return *p;
}

__device__ __forceinline__ float load_as(const __nv_bfloat16* p) {
    return __bfloat162float(*p);
}

// Values 4q … 4q + 3 of `p`, in one 16-byte (FP32) or 8-byte (BF16) load.
__device__ __forceinline__ float4 load_quad(const float* p, int64_t q) {
    return reinterpret_cast<const float4*>(p)[q];
}

__device__ __forceinline__ float4 load_quad(const __nv_bfloat16* p, int64_t q) {
    return float_quad(reinterpret_cast<const uint2*>(p)[q]);
}

} // namespace octet::cuda
