// The multi-tensor AdamW step on the GPU: three launches for all parameters — partial sums of the
// squared gradients (fixed grid, double accumulators), their total with the clipping factor, and
// the update, one block per chunk of one tensor. The norm never leaves the device before the
// update, so the step needs no host round trip.
//
// The hyperparameters are read from the device, as the norm is, so a recorded step (CUDA graph)
// takes each step's learning rate and bias corrections.
//
// FP8-LM's scaled storage takes six: the gradients' per-tensor amaxes; their rounding through
// the weight-gradient format with the squared norm's partials (one per chunk); the norm; the
// update, computed to take the new amaxes of m, v and the master; the update again, now storing
// them under the new scales (recomputing is cheaper than keeping FP32 copies, and gives the same
// values); and the new scales themselves, written last because the update reads the old ones.
// Amaxes reach their tensor's slot by one atomic max per block (order-free, so deterministic).
// MOSS's weight bounds advance here too, after the update (recipe/moss_weight_scaling.h).
// This file is compiled without FMA contraction (src/CMakeLists.txt), so the update and the
// bounds round as the CPU's do and both backends store the same codes and bounds.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "recipe/moss_weight_scaling.h"

namespace octet::cuda {
namespace {

constexpr int norm_threads = 512;

// Four gradients per 16-byte load where g is aligned; the last total % 4 go to block 0.
__global__ void square_partials_kernel(double* partials, const float* g, int64_t total,
                                       bool vectors) {
    double acc = 0.0;
    const int64_t stride = int64_t(gridDim.x) * blockDim.x,
                  first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t quads = vectors ? total / 4 : 0;
    for (int64_t q = first; q < quads; q += stride) {
        const float4 x = reinterpret_cast<const float4*>(g)[q];
        acc += double(x.x) * double(x.x) + double(x.y) * double(x.y) + double(x.z) * double(x.z) +
               double(x.w) * double(x.w);
    }
    for (int64_t i = 4 * quads + first; i < total; i += stride) acc += double(g[i]) * double(g[i]);
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void norm_kernel(double* norm_out, const double* partials, int count, double max_norm) {
    double acc = 0.0;
    for (int i = int(threadIdx.x); i < count; i += int(blockDim.x)) acc += partials[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) {
        const double norm = sqrt(acc);
        norm_out[0] = norm;
        norm_out[1] = clip_factor(norm, max_norm);
    }
}

// The step's hyperparameters with the clipping factor norm_kernel found.
__device__ AdamWHyper step_hyper(const AdamWHyper* hyper, const double* norm) {
    AdamWHyper h = *hyper;
    h.clip = norm[1];
    return h;
}

// Four moments i..i+3 (i a multiple of 4, the array 16-byte aligned) in one load and one store:
// 16 bytes of FP32, or 8 of BF16 codes, decoded and encoded as storage_format.h does.
template <StorageFormat F>
__device__ float4 load_moments4(const void* codes, int64_t i) {
    if constexpr (F == StorageFormat::fp32) {
        return *reinterpret_cast<const float4*>(static_cast<const float*>(codes) + i);
    } else {
        const uint2 c = *reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(codes) + i);
        return {decode(c.x & 0xFFFFu, Format::bf16), decode(c.x >> 16, Format::bf16),
                decode(c.y & 0xFFFFu, Format::bf16), decode(c.y >> 16, Format::bf16)};
    }
}

template <StorageFormat F>
__device__ void store_moments4(void* codes, int64_t i, float4 x) {
    if constexpr (F == StorageFormat::fp32) {
        *reinterpret_cast<float4*>(static_cast<float*>(codes) + i) = x;
    } else {
        const auto code = [](float v) { return encode_saturate(v, Format::bf16); };
        *reinterpret_cast<uint2*>(static_cast<uint16_t*>(codes) + i) =
            make_uint2(code(x.x) | code(x.y) << 16, code(x.z) | code(x.w) << 16);
    }
}

// The chunk's elements from the first multiple of 4 to the last go four at a time through 16-byte
// loads and stores (the arrays start 16-byte aligned: `vectors`), the few at either end one by
// one. The arithmetic per element is adamw_update's either way, on the moments as M and V store
// them (FP32 or BF16).
template <StorageFormat M, StorageFormat V>
__global__ void adamw_kernel(float* w, const float* g, void* m, void* v, const AdamWChunk* chunks,
                             const AdamWHyper* hyper, const double* norm, bool vectors) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    const AdamWHyper h = step_hyper(hyper, norm);
    const bool decay = chunk.decay != 0;
    const int64_t body_begin = vectors ? min(chunk.end, (chunk.begin + 3) / 4 * 4) : chunk.end;
    const int64_t body_end = vectors ? max(body_begin, chunk.end / 4 * 4) : chunk.end;
    const auto one_by_one = [&](int64_t begin, int64_t end) {
        for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
            float mi = load_element(M, m, i, 1.0f), vi = load_element(V, v, i, 1.0f);
            adamw_update(w[i], g[i], mi, vi, h, decay);
            store_element(M, m, i, mi, 1.0f);
            store_element(V, v, i, vi, 1.0f);
        }
    };
    one_by_one(chunk.begin, body_begin);
    one_by_one(body_end, chunk.end);
    for (int64_t i = body_begin + 4 * int64_t(threadIdx.x); i < body_end; i += 4 * blockDim.x) {
        float4 wi = *reinterpret_cast<const float4*>(w + i), mi = load_moments4<M>(m, i),
               vi = load_moments4<V>(v, i);
        const float4 gi = *reinterpret_cast<const float4*>(g + i);
        adamw_update(wi.x, gi.x, mi.x, vi.x, h, decay);
        adamw_update(wi.y, gi.y, mi.y, vi.y, h, decay);
        adamw_update(wi.z, gi.z, mi.z, vi.z, h, decay);
        adamw_update(wi.w, gi.w, mi.w, vi.w, h, decay);
        *reinterpret_cast<float4*>(w + i) = wi;
        store_moments4<M>(m, i, mi);
        store_moments4<V>(v, i, vi);
    }
}

__device__ void atomic_amax(float* slot, float block_amax) {
    if (threadIdx.x == 0 && block_amax > 0.0f)
        atomicMax(reinterpret_cast<unsigned*>(slot), __float_as_uint(block_amax));
}

// amax[chunk.tensor] = max over the chunk's finite x[i].
__global__ void span_amax_kernel(float* amax, const float* x, const AdamWChunk* chunks) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    float a = 0.0f;
    for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x)
        a = finite_amax(a, x[i]);
    atomic_amax(amax + chunk.tensor, block_max(a));
}

__global__ void round_and_square_kernel(double* partials, float* g, StorageFormat format,
                                        const float* amax, const AdamWChunk* chunks) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    const BlockScale s = storage_scale(format, amax[chunk.tensor]);
    double acc = 0.0;
    for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x) {
        const float x = round_through_storage(format, g[i], s);
        g[i] = x;
        acc += double(x) * double(x);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// amax: [m | v | master] × tensors.
__global__ void scaled_update_amax_kernel(float* amax, int64_t tensors, const float* w,
                                          const float* g, ScaledAdamWState s,
                                          const AdamWChunk* chunks, const AdamWHyper* hyper,
                                          const double* norm) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    const AdamWHyper h = step_hyper(hyper, norm);
    float am = 0.0f, av = 0.0f, aw = 0.0f;
    for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x) {
        const AdamWValues r = scaled_adamw_element(s, i, chunk.tensor, w, g[i], h, chunk.decay);
        am = finite_amax(am, r.m);
        av = finite_amax(av, r.v);
        aw = finite_amax(aw, r.w);
    }
    atomic_amax(amax + chunk.tensor, block_max(am));
    atomic_amax(amax + tensors + chunk.tensor, block_max(av));
    atomic_amax(amax + 2 * tensors + chunk.tensor, block_max(aw));
}

__global__ void scaled_update_store_kernel(float* w, const float* g, ScaledAdamWState s,
                                           const AdamWChunk* chunks, const AdamWHyper* hyper,
                                           const double* norm, const float* amax, int64_t tensors) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    const AdamWHyper h = step_hyper(hyper, norm);
    const BlockScale sm = storage_scale(s.m.format, amax[chunk.tensor]);
    const BlockScale sv = storage_scale(s.v.format, amax[tensors + chunk.tensor]);
    const BlockScale sw = storage_scale(s.master.format, amax[2 * tensors + chunk.tensor]);
    const bool fp32_master = s.master.format == StorageFormat::fp32;
    for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x) {
        const AdamWValues r = scaled_adamw_element(s, i, chunk.tensor, w, g[i], h, chunk.decay);
        store_element(s.m.format, s.m.codes, i, r.m, sm.scale);
        store_element(s.v.format, s.v.codes, i, r.v, sv.scale);
        if (fp32_master) {
            w[i] = r.w;
        } else {
            store_element(s.master.format, s.master.codes, i, r.w, sw.scale);
            w[i] = load_element(s.master.format, s.master.codes, i, sw.scale_inv);
        }
    }
}

__global__ void store_kernel(ScaledTensors dst, const float* x, const AdamWChunk* chunks,
                             const float* amax) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    const BlockScale s = storage_scale(dst.format, amax[chunk.tensor]);
    for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x)
        store_element(dst.format, dst.codes, i, x[i], s.scale);
}

__global__ void load_kernel(float* x, ScaledTensors src, const AdamWChunk* chunks) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    const float scale_inv = src.scale_inv[chunk.tensor];
    for (int64_t i = chunk.begin + threadIdx.x; i < chunk.end; i += blockDim.x)
        x[i] = load_element(src.format, src.codes, i, scale_inv);
}

__global__ void set_scales_kernel(ScaledTensors t, const float* amax, int64_t tensors) {
    for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < tensors;
         j += int64_t(gridDim.x) * blockDim.x)
        t.scale_inv[j] = storage_scale(t.format, amax[j]).scale_inv;
}

void set_scales(const ScaledTensors& t, const float* amax, int64_t tensors, cudaStream_t stream) {
    set_scales_kernel<<<blocks_for(tensors, elementwise_threads), elementwise_threads, 0, stream>>>(
        t, amax, tensors);
    OCTET_CUDA_LAUNCHED();
}

void zero_amaxes(float* amax, int64_t count, cudaStream_t stream) {
    OCTET_CUDA_CHECK(cudaMemsetAsync(amax, 0, size_t(count) * sizeof(float), stream));
}

} // namespace

void adamw_step(float* w, const float* g, MomentStorage m, MomentStorage v,
                const AdamWChunk* chunks, int64_t num_chunks, int64_t total, const AdamWHyper* h,
                double max_norm, double* norm_out, double* partials, cudaStream_t stream) {
    require_plain_moments(m, v);
    square_partials_kernel<<<adamw_norm_blocks, norm_threads, 0, stream>>>(partials, g, total,
                                                                           aligned_to(g, 16));
    OCTET_CUDA_LAUNCHED();
    norm_kernel<<<1, 1024, 0, stream>>>(norm_out, partials, adamw_norm_blocks, max_norm);
    OCTET_CUDA_LAUNCHED();
    if (num_chunks == 0) return;
    const bool vectors = aligned_to(w, 16) && aligned_to(g, 16) && aligned_to(m.codes, 16) &&
                         aligned_to(v.codes, 16);
    const bool m32 = m.format == StorageFormat::fp32, v32 = v.format == StorageFormat::fp32;
    constexpr StorageFormat fp32 = StorageFormat::fp32, bf16 = StorageFormat::bf16;
    const auto kernel = m32 ? (v32 ? adamw_kernel<fp32, fp32> : adamw_kernel<fp32, bf16>)
                            : (v32 ? adamw_kernel<bf16, fp32> : adamw_kernel<bf16, bf16>);
    kernel<<<unsigned(num_chunks), elementwise_threads, 0, stream>>>(w, g, m.codes, v.codes, chunks,
                                                                     h, norm_out, vectors);
    OCTET_CUDA_LAUNCHED();
}

void advance_weight_bounds(double* bounds, int64_t count, const AdamWHyper* h,
                           cudaStream_t stream) {
    if (count == 0) return;
    for_each(count, stream, [=] __device__(int64_t i) {
        bounds[i] = advance_weight_bound(bounds[i], h->decay, h->lr, h->max_update);
    });
}

void adamw_step_scaled(float* w, float* g, const ScaledAdamWState& s, const AdamWChunk* chunks,
                       int64_t num_chunks, int64_t tensors, const AdamWHyper* h, double max_norm,
                       double* norm_out, double* partials, float* amax, cudaStream_t stream) {
    if (num_chunks == 0) {
        OCTET_CUDA_CHECK(cudaMemsetAsync(norm_out, 0, 2 * sizeof(double), stream));
        return;
    }
    const unsigned blocks = unsigned(num_chunks);
    zero_amaxes(amax, 3 * tensors, stream);
    span_amax_kernel<<<blocks, elementwise_threads, 0, stream>>>(amax, g, chunks);
    OCTET_CUDA_LAUNCHED();
    round_and_square_kernel<<<blocks, elementwise_threads, 0, stream>>>(partials, g, s.weight_grad,
                                                                        amax, chunks);
    OCTET_CUDA_LAUNCHED();
    norm_kernel<<<1, 1024, 0, stream>>>(norm_out, partials, int(num_chunks), max_norm);
    OCTET_CUDA_LAUNCHED();
    zero_amaxes(amax, 3 * tensors, stream);
    scaled_update_amax_kernel<<<blocks, elementwise_threads, 0, stream>>>(amax, tensors, w, g, s,
                                                                          chunks, h, norm_out);
    OCTET_CUDA_LAUNCHED();
    scaled_update_store_kernel<<<blocks, elementwise_threads, 0, stream>>>(w, g, s, chunks, h,
                                                                           norm_out, amax, tensors);
    OCTET_CUDA_LAUNCHED();
    set_scales(s.m, amax, tensors, stream);
    set_scales(s.v, amax + tensors, tensors, stream);
    if (s.master.format != StorageFormat::fp32)
        set_scales(s.master, amax + 2 * tensors, tensors, stream);
}

void store_scaled(const ScaledTensors& dst, const float* x, const AdamWChunk* chunks,
                  int64_t num_chunks, int64_t tensors, float* amax, cudaStream_t stream) {
    if (num_chunks == 0) return;
    zero_amaxes(amax, tensors, stream);
    span_amax_kernel<<<unsigned(num_chunks), elementwise_threads, 0, stream>>>(amax, x, chunks);
    OCTET_CUDA_LAUNCHED();
    store_kernel<<<unsigned(num_chunks), elementwise_threads, 0, stream>>>(dst, x, chunks, amax);
    OCTET_CUDA_LAUNCHED();
    set_scales(dst, amax, tensors, stream);
}

void load_scaled(float* x, const ScaledTensors& src, const AdamWChunk* chunks, int64_t num_chunks,
                 cudaStream_t stream) {
    if (num_chunks == 0) return;
    load_kernel<<<unsigned(num_chunks), elementwise_threads, 0, stream>>>(x, src, chunks);
    OCTET_CUDA_LAUNCHED();
}

} // namespace octet::cuda
