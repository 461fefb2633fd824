// The activations' per-element functions in FP32, shared by their own kernels (activation.cu) and
// by the quantization that computes an activation's output as it loads it (quantize.cu), so that
// both give the same values bit for bit.
#pragma once

namespace octet::cuda {

constexpr float gelu_k = 0.7978845608028654f; // sqrt(2/π)

// GELU, tanh approximation (GPT-2): 0.5 v (1 + tanh u), u = √(2/π) (v + 0.044715 v³), computed
// as v · σ(2u), since 0.5 (1 + tanh u) = σ(2u): the hardware's exp2 and reciprocal approximations
// take a few instructions where tanhf takes about twenty, which the quantization computing GELU
// as it loads its tiles spends on every value (with tanhf, 0.7 ms more a step at 1.3B over its 48
// calls, H100). It also keeps its precision where 1 + tanh u cancels (v < −3). Relative error
// about 1e-6 (the exponential's argument rounded), far below the BF16 outputs' 2^-9.
__device__ __forceinline__ float gelu_sigmoid(float v) {
    const float u = gelu_k * (v + 0.044715f * v * v * v);
    return __fdividef(1.0f, 1.0f + __expf(-2.0f * u));
}

__device__ __forceinline__ float gelu(float v) {
    return v * gelu_sigmoid(v);
}

// d gelu(v) / dv · d = (σ + 2 v σ (1 − σ) du/dv) · d, σ = σ(2u).
__device__ __forceinline__ float gelu_grad(float v, float d) {
    const float s = gelu_sigmoid(v);
    const float du = gelu_k * (1.0f + 3.0f * 0.044715f * v * v);
    return (s + 2.0f * v * s * (1.0f - s) * du) * d;
}

// SwiGLU of one gate g and up value u: silu(g) · u.
__device__ __forceinline__ float swiglu(float g, float u) {
    return g / (1.0f + expf(-g)) * u;
}

// Its gradients from d = d_out: with respect to the gate, and to the up value. Both take the
// gate's sigmoid.
__device__ __forceinline__ float swiglu_sigmoid(float g) {
    return 1.0f / (1.0f + expf(-g));
}

__device__ __forceinline__ float swiglu_grad_gate(float g, float u, float d) {
    const float sig = swiglu_sigmoid(g);
    return d * u * sig * (1.0f + g * (1.0f - sig));
}

__device__ __forceinline__ float swiglu_grad_up(float g, float d) {
    return d * g * swiglu_sigmoid(g);
}

// The same as function objects, for kernels that take their function as a type.
struct Gelu {
    __device__ float operator()(float v) const { return gelu(v); }
};
struct GeluGrad {
    __device__ float operator()(float v, float d) const { return gelu_grad(v, d); }
};
struct Swiglu {
    __device__ float operator()(float g, float u) const { return swiglu(g, u); }
};

} // namespace octet::cuda
