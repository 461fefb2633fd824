// Linear layers on the CPU: OpenBLAS GEMMs. Exact operands use the inputs in place; BF16 and FP8
// precisions multiply the operands that LinearPrecision prepared (rounded or dequantized, with the
// transposed FP8 copies for the backward) with FP32 accumulation.
#include <cblas.h>

#include <type_traits>
#include <vector>

#include "common/error.h"
#include "cpu/kernels.h"
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

template <typename T>
bool exact(const LinearPrecision* p) {
    if (!p || p->kind() == LinearPrecision::Kind::exact) return true;
    if constexpr (!std::is_same_v<T, float>)
        throw Error("linear: BF16/FP8 precision is emulated in float only");
    return false;
}

} // namespace

template <typename T>
void linear_forward(const LinearForwardArgs<T>& a) {
    if (a.n == 0 || a.m == 0) return;
    if (exact<T>(a.precision)) {
        gemm(false, true, a.n, a.m, a.k, a.in, a.k, a.weight, a.k, T(0), a.out, a.m);
    } else if constexpr (std::is_same_v<T, float>) {
        std::vector<float> xq, wq;
        a.precision->forward_operands(a.in, a.n, a.k, a.weight, a.m, xq, wq);
        gemm(false, true, a.n, a.m, a.k, xq.data(), a.k, wq.data(), a.k, 0.0f, a.out, a.m);
    }
    if (a.bias) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < a.n; ++i)
            for (int64_t j = 0; j < a.m; ++j) a.out[i * a.m + j] += a.bias[j];
    }
}

template <typename T>
void linear_backward(const LinearBackwardArgs<T>& a) {
    if (a.n == 0 || a.m == 0) return;
    if (exact<T>(a.precision)) {
        // dx += dy · W;  dW += dyᵀ · x
        if (a.d_in)
            gemm(false, false, a.n, a.k, a.m, a.d_out, a.m, a.weight, a.k, T(1), a.d_in, a.k);
        gemm(true, false, a.m, a.k, a.n, a.d_out, a.m, a.in, a.k, T(1), a.d_weight, a.k);
    } else if constexpr (std::is_same_v<T, float>) {
        // The TN GEMMs of the GPU: dx += dyq · (Wᵀ)ᵀ with Wᵀ [k, m]; dW += dyᵀ · (xᵀ)ᵀ.
        std::vector<float> dyq, wtq, dytq, xtq;
        a.precision->dgrad_operands(a.d_out, dyq, wtq);
        a.precision->wgrad_operands(dytq, xtq);
        if (a.d_in)
            gemm(false, true, a.n, a.k, a.m, dyq.data(), a.m, wtq.data(), a.m, 1.0f, a.d_in, a.k);
        gemm(false, true, a.m, a.k, a.n, dytq.data(), a.n, xtq.data(), a.n, 1.0f, a.d_weight, a.k);
    }
    if (a.d_bias) {
        // The bias gradient comes from the high-precision dy, as in TransformerEngine.
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < a.m; ++j) {
            double s = 0;
            for (int64_t i = 0; i < a.n; ++i) s += double(a.d_out[i * a.m + j]);
            a.d_bias[j] += T(s);
        }
    }
}

template void linear_forward<float>(const LinearForwardArgs<float>&);
template void linear_forward<double>(const LinearForwardArgs<double>&);
template void linear_backward<float>(const LinearBackwardArgs<float>&);
template void linear_backward<double>(const LinearBackwardArgs<double>&);

} // namespace octet::cpu
