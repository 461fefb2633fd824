// The optimizer's ops on the CPU: scaling, and the AdamW step in FP32 storage and in FP8-LM's
// scaled storage (ops/adamw_update.h, ops/scaled_adamw.h).
#include <algorithm>
#include <cmath>

#include "cpu/kernels.h"

namespace octet::cpu {

template <typename T>
void scale(T* x, double s, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) x[i] = T(double(x[i]) * s);
}

namespace {

double squared_norm(const float* g, const std::vector<TensorSpan>& spans) {
    double sq = 0;
    for (const TensorSpan& t : spans)
        for (int64_t i = t.offset; i < t.offset + t.numel; ++i) sq += double(g[i]) * double(g[i]);
    return sq;
}

float span_amax(const float* x, const TensorSpan& t) {
    float amax = 0.0f;
    for (int64_t i = t.offset; i < t.offset + t.numel; ++i) amax = finite_amax(amax, x[i]);
    return amax;
}

// x is in the parameters' flat layout, as the codes are.
void store_span(const ScaledTensors& dst, size_t j, const float* x, const TensorSpan& t) {
    const BlockScale s = storage_scale(dst.format, span_amax(x, t));
    dst.scale_inv[j] = s.scale_inv;
#pragma omp parallel for schedule(static)
    for (int64_t i = t.offset; i < t.offset + t.numel; ++i)
        store_element(dst.format, dst.codes, i, x[i], s.scale);
}

void load_span(float* x, const ScaledTensors& src, size_t j, const TensorSpan& t) {
#pragma omp parallel for schedule(static)
    for (int64_t i = t.offset; i < t.offset + t.numel; ++i)
        x[i] = load_element(src.format, src.codes, i, src.scale_inv[j]);
}

} // namespace

double adamw_step(float* w, const float* g, MomentStorage m, MomentStorage v,
                  const std::vector<TensorSpan>& spans, AdamWHyper h, double max_norm) {
    require_plain_moments(m, v);
    const double norm = std::sqrt(squared_norm(g, spans));
    h.clip = clip_factor(norm, max_norm);
    for (const TensorSpan& t : spans) {
#pragma omp parallel for schedule(static)
        for (int64_t i = t.offset; i < t.offset + t.numel; ++i) {
            float mi = load_element(m.format, m.codes, i, 1.0f);
            float vi = load_element(v.format, v.codes, i, 1.0f);
            adamw_update(w[i], g[i], mi, vi, h, t.decay);
            store_element(m.format, m.codes, i, mi, 1.0f);
            store_element(v.format, v.codes, i, vi, 1.0f);
        }
    }
    return norm;
}

void store_scaled(const ScaledTensors& dst, const float* x, const std::vector<TensorSpan>& spans) {
    for (size_t j = 0; j < spans.size(); ++j) store_span(dst, j, x, spans[j]);
}

void load_scaled(float* x, const ScaledTensors& src, const std::vector<TensorSpan>& spans) {
    for (size_t j = 0; j < spans.size(); ++j) load_span(x, src, j, spans[j]);
}

double adamw_step_scaled(float* w, float* g, const ScaledAdamWState& s,
                         const std::vector<TensorSpan>& spans, AdamWHyper h, double max_norm) {
    for (const TensorSpan& t : spans) {
        const BlockScale gs = storage_scale(s.weight_grad, span_amax(g, t));
#pragma omp parallel for schedule(static)
        for (int64_t i = t.offset; i < t.offset + t.numel; ++i)
            g[i] = round_through_storage(s.weight_grad, g[i], gs);
    }
    const double norm = std::sqrt(squared_norm(g, spans));
    h.clip = clip_factor(norm, max_norm);
    // The updated values of one span in FP32, in the parameters' flat layout (offset by the
    // span's start), then stored under scales of their own amaxes.
    std::vector<float> nw, nm, nv;
    for (size_t j = 0; j < spans.size(); ++j) {
        const TensorSpan& t = spans[j];
        for (std::vector<float>* b : {&nw, &nm, &nv}) b->resize(size_t(t.numel));
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < t.numel; ++i) {
            const int64_t at = t.offset + i;
            const AdamWValues r = scaled_adamw_element(s, at, int64_t(j), w, g[at], h, t.decay);
            nw[size_t(i)] = r.w;
            nm[size_t(i)] = r.m;
            nv[size_t(i)] = r.v;
        }
        const TensorSpan local{0, t.numel, t.decay};
        store_span(span_of(s.m, t.offset, j), 0, nm.data(), local);
        store_span(span_of(s.v, t.offset, j), 0, nv.data(), local);
        if (s.master.format == StorageFormat::fp32) {
            std::copy(nw.begin(), nw.end(), w + t.offset);
            continue;
        }
        const ScaledTensors master = span_of(s.master, t.offset, j);
        store_span(master, 0, nw.data(), local);
        load_span(w + t.offset, master, 0, local);
    }
    return norm;
}

template void scale(float*, double, int64_t);
template void scale(double*, double, int64_t);

} // namespace octet::cpu
