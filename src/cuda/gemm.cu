// cuBLASLt GEMMs (see gemm.h). The row-major out[m, n] = a · bᵀ is the column-major n×m matrix
// bᵀ-times-a: cuBLASLt's operand A is our b (k×n, transposed), its B is our a (k×m).
#include "cuda/gemm.h"

#include <string>

#include "common/error.h"
#include "cuda/check.h"

#define OCTET_CUBLAS_CHECK(call)                                                                   \
    do {                                                                                           \
        const cublasStatus_t octet_st_ = (call);                                                   \
        if (octet_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
            throw ::octet::Error(std::string("cuBLASLt error ") + std::to_string(int(octet_st_)) + \
                                 " in " #call " at " __FILE__ ":" + std::to_string(__LINE__));     \
    } while (0)

namespace octet::cuda {

namespace {

cudaDataType_t data_type(Format f) {
    switch (f) {
    case Format::e4m3:
        return CUDA_R_8F_E4M3;
    case Format::e5m2:
        return CUDA_R_8F_E5M2;
    case Format::bf16:
        return CUDA_R_16BF;
    default:
        throw Error("cuBLASLt GEMM: FP16 operands are not supported");
    }
}

} // namespace

// RAII holders for the descriptors of one call.
struct CublasLtGemm::Descriptors {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
    ~Descriptors() {
        if (ld) cublasLtMatrixLayoutDestroy(ld);
        if (lb) cublasLtMatrixLayoutDestroy(lb);
        if (la) cublasLtMatrixLayoutDestroy(la);
        if (desc) cublasLtMatmulDescDestroy(desc);
    }
};

CublasLtGemm::CublasLtGemm() {
    OCTET_CUBLAS_CHECK(cublasLtCreate(&handle_));
    OCTET_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
    const float scalars[2] = {0.0f, 1.0f};
    OCTET_CUDA_CHECK(cudaMalloc(&device_scalars_, sizeof scalars));
    OCTET_CUDA_CHECK(cudaMemcpy(device_scalars_, scalars, sizeof scalars, cudaMemcpyHostToDevice));
}

CublasLtGemm::~CublasLtGemm() {
    if (workspace_) cudaFree(workspace_);
    if (device_scalars_) cudaFree(device_scalars_);
    if (handle_) cublasLtDestroy(handle_);
}

void CublasLtGemm::run(const GemmArgs& g, cudaStream_t stream) {
    const bool fp8 = g.scaling != GemmScaling::bf16;
    if (fp8 == (g.a_format == Format::bf16) || fp8 == (g.b_format == Format::bf16))
        throw Error("cuBLASLt GEMM: operand formats do not match the scaling (BF16 with bf16, FP8 "
                    "otherwise)");
    if (g.k % 16 != 0 || g.n % 16 != 0)
        throw Error("cuBLASLt GEMM: k and n must be multiples of 16 (got k=" + std::to_string(g.k) +
                    ", n=" + std::to_string(g.n) + ")");
    const bool blockwise = g.scaling == GemmScaling::blockwise;
    if (blockwise && g.m % 4 != 0)
        throw Error("cuBLASLt block-wise GEMM: m must be a multiple of 4 (got " +
                    std::to_string(g.m) + ")");
    if (g.a_format == Format::e5m2 && g.b_format == Format::e5m2)
        throw Error("cuBLASLt GEMM: E5M2 x E5M2 has no FP8 tensor-core path");
    Descriptors d;
    OCTET_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
    OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                      &transpose, sizeof transpose));
    OCTET_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none));
    if (g.beta != 0.0f && !g.out_fp32) throw Error("cuBLASLt GEMM: beta needs FP32 output");
    if (fp8) {
        int32_t mode_a_operand = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
        int32_t mode_b_operand = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
        if (g.scaling == GemmScaling::outer_vector) {
            mode_a_operand = mode_b_operand = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        } else if (blockwise) {
            mode_a_operand = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
            mode_b_operand = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
        }
        // cuBLASLt's A is our b (weights), its B our a (activations).
        OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
                                                          &mode_b_operand, 4));
        OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE,
                                                          &mode_a_operand, 4));
        OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            d.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.b_scale_inv, sizeof g.b_scale_inv));
        OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            d.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.a_scale_inv, sizeof g.a_scale_inv));
        if (g.scaling == GemmScaling::per_tensor) {
            const int8_t fast = g.fast_accum ? 1 : 0;
            OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
                d.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
        }
    }
    OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.la, data_type(g.b_format), uint64_t(g.k),
                                                  uint64_t(g.n), g.k));
    OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.lb, data_type(g.a_format), uint64_t(g.k),
                                                  uint64_t(g.m), g.k));
    OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.ld, g.out_fp32 ? CUDA_R_32F : CUDA_R_16BF,
                                                  uint64_t(g.n), uint64_t(g.m), g.n));

    const Key key{g.m,
                  g.n,
                  g.k,
                  int(g.a_format),
                  int(g.b_format),
                  int(g.scaling),
                  g.fast_accum,
                  g.out_fp32,
                  g.beta != 0.0f ? 2 : 0};
    const cublasLtMatmulAlgo_t& algo = algorithm(key, d, "this scaling");
    const float alpha = 1.0f;
    OCTET_CUBLAS_CHECK(cublasLtMatmul(handle_, d.desc, &alpha, g.b, d.la, g.a, d.lb, &g.beta, g.out,
                                      d.ld, g.out, d.ld, &algo, workspace_, workspace_bytes_,
                                      stream));
}

// Row-major c = op(a)·op(b) is column-major cᵀ = op(b)ᵀ·op(a)ᵀ, and a row-major matrix read as
// column-major is its transpose: cuBLASLt's A is our b, its B our a, each transposed exactly when
// ours is.
void CublasLtGemm::run(const DenseGemmArgs& g, cudaStream_t stream) {
    if (g.m <= 0 || g.n <= 0 || g.k <= 0 || g.batch <= 0)
        throw Error("dense GEMM: empty shape m=" + std::to_string(g.m) +
                    " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k));
    if (g.bias && g.batch != 1) throw Error("dense GEMM: a bias needs batch 1");
    if (g.alpha && g.beta != 0.0f && g.beta != 1.0f)
        throw Error("dense GEMM: a device alpha needs beta 0 or 1");
    if (g.c_bf16 && (!g.bf16 || g.beta != 0.0f))
        throw Error("dense GEMM: a BF16 output needs BF16 operands and beta 0");
    if (g.c_in && g.beta == 0.0f) throw Error("dense GEMM: c_in is read only with a beta");
    const cudaDataType_t in = g.bf16 ? CUDA_R_16BF : CUDA_R_32F;
    Descriptors d;
    OCTET_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t op_a = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    OCTET_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    OCTET_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    if (g.alpha) {
        const cublasLtPointerMode_t mode = CUBLASLT_POINTER_MODE_DEVICE;
        OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_POINTER_MODE,
                                                          &mode, sizeof mode));
    }
    if (g.bias) {
        const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
        OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                          &epilogue, sizeof epilogue));
        OCTET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                          &g.bias, sizeof g.bias));
    }
    // Stored shapes (rows, cols, ld) in column-major terms.
    const uint64_t a_rows = uint64_t(g.trans_b ? g.k : g.n),
                   a_cols = uint64_t(g.trans_b ? g.n : g.k);
    const uint64_t b_rows = uint64_t(g.trans_a ? g.m : g.k),
                   b_cols = uint64_t(g.trans_a ? g.k : g.m);
    OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.la, in, a_rows, a_cols, int64_t(a_rows)));
    OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.lb, in, b_rows, b_cols, int64_t(b_rows)));
    OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.ld, g.c_bf16 ? CUDA_R_16BF : CUDA_R_32F,
                                                  uint64_t(g.n), uint64_t(g.m), g.n));
    if (g.batch > 1) {
        const int32_t count = int32_t(g.batch);
        const std::pair<cublasLtMatrixLayout_t, int64_t> layouts[] = {
            {d.la, g.stride_b}, {d.lb, g.stride_a}, {d.ld, g.stride_c}};
        for (const auto& [layout, stride] : layouts) {
            OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
                layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
            OCTET_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
                layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
        }
    }
    const Key key{g.m,
                  g.n,
                  g.k,
                  (g.bf16 ? 1 : 0) + (g.c_bf16 ? 2 : 0),
                  (g.trans_a ? 2 : 0) + (g.trans_b ? 1 : 0),
                  g.bias != nullptr,
                  g.batch,
                  1 + (g.beta != 0.0f ? 1 : 0),
                  g.alpha ? 2 : 1};
    const cublasLtMatmulAlgo_t& algo = algorithm(key, d, "this dense layout");
    const float one = 1.0f;
    const float* alpha = g.alpha ? g.alpha : &one;
    const float* beta = g.alpha ? device_scalars_ + (g.beta != 0.0f ? 1 : 0) : &g.beta;
    OCTET_CUBLAS_CHECK(cublasLtMatmul(handle_, d.desc, alpha, g.b, d.la, g.a, d.lb, beta,
                                      g.c_in ? g.c_in : g.c, d.ld, g.c, d.ld, &algo, workspace_,
                                      workspace_bytes_, stream));
}

const cublasLtMatmulAlgo_t& CublasLtGemm::algorithm(const Key& key, const Descriptors& d,
                                                    const char* what) {
    auto it = algos_.find(key);
    if (it != algos_.end()) return it->second;
    cublasLtMatmulPreference_t pref;
    OCTET_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_, sizeof workspace_bytes_);
    const cublasStatus_t h = st == CUBLAS_STATUS_SUCCESS
                                 ? cublasLtMatmulAlgoGetHeuristic(handle_, d.desc, d.la, d.lb, d.ld,
                                                                  d.ld, pref, 1, &result, &found)
                                 : st;
    cublasLtMatmulPreferenceDestroy(pref);
    if (h != CUBLAS_STATUS_SUCCESS || found == 0)
        throw Error("cuBLASLt has no algorithm for m=" + std::to_string(key[0]) + " n=" +
                    std::to_string(key[1]) + " k=" + std::to_string(key[2]) + " with " + what);
    return algos_.emplace(key, result.algo).first->second;
}

std::vector<float> blockwise_scale_layout(const QuantizedTensor& q) {
    if (q.scales.size() != 1) throw Error("blockwise GEMM operands have one scale level");
    const ScaleGrid& g = q.scales[0];
    std::vector<float> out;
    if (g.block_rows == 1 && g.block_cols == 128) { // [rows][kb] → [kb][rows]
        out.resize(g.scale_inv.size());
        for (int64_t r = 0; r < g.grid_rows; ++r)
            for (int64_t kb = 0; kb < g.grid_cols; ++kb)
                out[size_t(kb * g.grid_rows + r)] = g.scale_inv[size_t(r * g.grid_cols + kb)];
    } else if (g.block_rows == 128 && g.block_cols == 128) { // [rows/128][kb], rows padded to 4
        const int64_t stride = (g.grid_cols + 3) / 4 * 4;
        out.assign(size_t(g.grid_rows * stride), 1.0f);
        for (int64_t r = 0; r < g.grid_rows; ++r)
            for (int64_t kb = 0; kb < g.grid_cols; ++kb)
                out[size_t(r * stride + kb)] = g.scale_inv[size_t(r * g.grid_cols + kb)];
    } else {
        throw Error("blockwise GEMM operands need 1x128 or 128x128 scale blocks");
    }
    return out;
}

} // namespace octet::cuda
