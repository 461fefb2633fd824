// FP32 results stored as BF16 (round to nearest even, as __float2bfloat16_rn) and read back: one
// value, or four through 8-byte accesses. For kernels that write a BF16 layer's operand directly.
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

__device__ __forceinline__ float4 float_quad(uint2 bits) {
    return make_float4(__uint_as_float(bits.x << 16), __uint_as_float(bits.x & 0xFFFF0000u),
                       __uint_as_float(bits.y << 16), __uint_as_float(bits.y & 0xFFFF0000u));
}

} // namespace octet::cuda
