// Linear layers on the CPU: OpenBLAS GEMMs. Exact operands use the inputs in place; BF16 operands
// are the rounded copies LinearPrecision prepared; FP8 operands are multiplied as a Hopper FP8
// kernel multiplies them (scaled_gemm_nt below).
#include <cblas.h>

#include <algorithm>

#include <type_traits>
#include <vector>

#include "common/error.h"
#include "cpu/kernels.h"
#include "numerics/formats.h"
#include "ops/linear_precision.h"

namespace octet::cpu {
namespace {

// C[m×n] = α·op(A)·op(B) + β·C, row-major.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), 1.0f, a, int(lda), b,
                int(ldb), beta, c, int(ldc));
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), 1.0, a, int(lda), b,
                int(ldb), beta, c, int(ldc));
}

int64_t gcd(int64_t a, int64_t b) {
    return b == 0 ? a : gcd(b, a % b);
}

bool bf16(const LinearPrecision* p) {
    return p && p->kind() == LinearPrecision::Kind::bf16;
}

template <typename T>
T round_bf16(T v) {
    return T(round_to_format(float(v), Format::bf16, Overflow::ieee));
}

template <typename T>
bool exact(const LinearPrecision* p) {
    if (!p || p->kind() == LinearPrecision::Kind::exact) return true;
    if constexpr (!std::is_same_v<T, float>)
        throw Error("linear: BF16/FP8 precision is emulated in float only");
    return false;
}

// A BF16 or FP8 layer's dgrad for a reader that takes it in BF16 (autocast's dgrad).
void round_for_reader(const LinearBackwardArgs<float>& a) {
    if (a.d_in_for_reader)
        for (int64_t i = 0; i < a.n * a.k; ++i) a.d_in[i] = round_bf16(a.d_in[i]);
}

} // namespace

// out[n, m] (+)= a[n, K] · b[m, K]ᵀ for FP8 operands with groups along K. K is cut into chunks
// that no scale block straddles (the gcd of the block widths narrower than K): per chunk, the FP8
// values are multiplied and summed in FP32 (the tensor cores' work), then the partial sums are
// promoted and scaled by a's and b's scales of that chunk — every 128 of K for 1×128/128×128
// block scales, every 32 for MX and MOSS local scales, once for per-tensor scales.
void scaled_gemm_nt(const QuantizedTensor& a, const QuantizedTensor& b, float* out,
                    bool accumulate) {
    const int64_t n = a.rows, m = b.rows, k = a.cols;
    if (b.cols != k) throw Error("scaled GEMM: operands disagree on K");
    int64_t step = 0;
    for (const QuantizedTensor* q : {&a, &b})
        for (const ScaleGrid& g : q->scales)
            if (g.block_cols < k) step = gcd(step, g.block_cols);
    if (step == 0) step = k;
    float table_a[256], table_b[256];
    for (uint32_t c = 0; c < 256; ++c) {
        table_a[c] = decode(c, a.format);
        table_b[c] = decode(c, b.format);
    }
    if (!accumulate) std::fill(out, out + n * m, 0.0f);
    std::vector<float> va(size_t(n * step)), vb(size_t(m * step)), partial(size_t(n * m)),
        sa(static_cast<size_t>(n)), sb(static_cast<size_t>(m));
    for (int64_t k0 = 0; k0 < k; k0 += step) {
        const int64_t w = std::min(step, k - k0);
        for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < w; ++j)
                va[size_t(i * w + j)] = table_a[a.codes[size_t(i * k + k0 + j)]];
            sa[size_t(i)] = a.scale_inv_at(i, k0);
        }
        for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < w; ++j)
                vb[size_t(i * w + j)] = table_b[b.codes[size_t(i * k + k0 + j)]];
            sb[size_t(i)] = b.scale_inv_at(i, k0);
        }
        gemm(false, true, n, m, w, va.data(), w, vb.data(), w, 0.0f, partial.data(), m);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < m; ++j)
                out[i * m + j] += partial[size_t(i * m + j)] * (sa[size_t(i)] * sb[size_t(j)]);
    }
}

template <typename T>
void linear_forward(const LinearForwardArgs<T>& a) {
    if (a.n == 0 || a.m == 0) return;
    if (exact<T>(a.precision)) {
        gemm(false, true, a.n, a.m, a.k, a.in, a.k, a.weight, a.k, T(0), a.out, a.m);
    } else if constexpr (std::is_same_v<T, float>) {
        if (a.precision->kind() == LinearPrecision::Kind::fp8) {
            const auto op = a.precision->forward_fp8(a.in, a.n, a.k, a.weight, a.m);
            scaled_gemm_nt(op.a, op.b, a.out, false);
        } else {
            std::vector<float> xq, wq;
            a.precision->forward_operands(a.in, a.n, a.k, a.weight, a.m, xq, wq);
            gemm(false, true, a.n, a.m, a.k, xq.data(), a.k, wq.data(), a.k, 0.0f, a.out, a.m);
        }
    }
    // For an elementwise reader a BF16 layer returns autocast's output: BF16, with a BF16 bias;
    // an FP8 layer's is BF16 too, its bias added in FP32 (the GPU adds it in the GEMM's epilogue).
    const bool rounded = a.to_elementwise && !exact<T>(a.precision);
    if (a.bias || a.residual || rounded) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < a.n; ++i)
            for (int64_t j = 0; j < a.m; ++j) {
                const int64_t at = i * a.m + j;
                if (a.bias)
                    a.out[at] += rounded && bf16(a.precision) ? round_bf16(a.bias[j]) : a.bias[j];
                if (a.residual) a.out[at] += a.residual[at];
                if (rounded) a.out[at] = round_bf16(a.out[at]);
            }
    }
}

template <typename T>
void linear_backward(const LinearBackwardArgs<T>& a) {
    if (a.n == 0 || a.m == 0) {
        // No rows: dW = Σ over none is zero, written where asked (d_in and d_bias are untouched).
        if (!a.add_to_d_weight) std::fill(a.d_weight, a.d_weight + a.m * a.k, T(0));
        return;
    }
    // The bias gradient comes from dy as the GEMMs read it where that is BF16 (autocast computes
    // it from the BF16 gradient), else from the high-precision dy, as in TransformerEngine.
    const T* bias_dy = a.d_out;
    std::vector<float> dyq;
    if (exact<T>(a.precision)) {
        if (!a.in) throw Error("linear backward: an exact layer needs its forward's input");
        // dx = dy · W;  dW += dyᵀ · x (or =)
        if (a.d_in)
            gemm(false, false, a.n, a.k, a.m, a.d_out, a.m, a.weight, a.k, T(0), a.d_in, a.k);
        gemm(true, false, a.m, a.k, a.n, a.d_out, a.m, a.in, a.k, T(a.add_to_d_weight), a.d_weight,
             a.k);
    } else if constexpr (std::is_same_v<T, float>) {
        // The TN GEMMs of the GPU: dx = dy · (Wᵀ)ᵀ with Wᵀ [k, m]; dW += dyᵀ · (xᵀ)ᵀ.
        if (a.precision->kind() == LinearPrecision::Kind::fp8) {
            const auto dgrad = a.precision->dgrad_fp8(a.d_out, a.weight);
            bias_dy = a.precision->fp8_dy();
            if (a.d_in) {
                scaled_gemm_nt(dgrad.a, dgrad.b, a.d_in, false);
                round_for_reader(a);
            }
            const auto wgrad = a.precision->wgrad_fp8();
            scaled_gemm_nt(wgrad.a, wgrad.b, a.d_weight, a.add_to_d_weight);
        } else {
            std::vector<float> wtq, dytq, xtq;
            a.precision->dgrad_operands(a.d_out, dyq, wtq);
            bias_dy = dyq.data();
            a.precision->wgrad_operands(dytq, xtq);
            if (a.d_in) {
                gemm(false, true, a.n, a.k, a.m, dyq.data(), a.m, wtq.data(), a.m, 0.0f, a.d_in,
                     a.k);
                round_for_reader(a);
            }
            gemm(false, true, a.m, a.k, a.n, dytq.data(), a.n, xtq.data(), a.n,
                 float(a.add_to_d_weight), a.d_weight, a.k);
        }
    }
    if (a.d_bias) {
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < a.m; ++j) {
            double s = 0;
            for (int64_t i = 0; i < a.n; ++i) s += double(bias_dy[i * a.m + j]);
            a.d_bias[j] += T(s);
        }
    }
}

template void linear_forward<float>(const LinearForwardArgs<float>&);
template void linear_forward<double>(const LinearForwardArgs<double>&);
template void linear_backward<float>(const LinearBackwardArgs<float>&);
template void linear_backward<double>(const LinearBackwardArgs<double>&);

} // namespace octet::cpu
