// The microscaled GEMM (microscaled_gemm.h): CUTLASS's Hopper block-scaled kernel assembled for
// Octet's scale layouts, shape checks, and padding to TMA's 16-byte pitches.
#include "cuda/microscaled_gemm.h"

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

#include <string>

#include "cuda/check.h"

namespace octet::cuda {
namespace {

using namespace cute;

// 128×128×128 CTA tiles, no cluster, two consumer warpgroups sharing a tile (cooperative): the
// fastest of the configurations measured (docs/microscaled-gemm.md). The mainloop keeps a tile of
// partial sums beside the accumulators; at 128×256 or 256×128 the two spill out of registers.
using TileShape = Shape<_128, _128, _128>;
using ClusterShape = Shape<_1, _1, _1>;

template <int GranularityN, class ElementOut>
struct Kernel {
    // Scale grids with rows (M or N) fastest, 128 of K per scale.
    using ScaleConfig = cutlass::detail::Sm90BlockwiseScaleConfig<1, GranularityN, 128,
                                                                  GMMA::Major::MN, GMMA::Major::MN>;
    using LayoutSFA = decltype(ScaleConfig::deduce_layoutSFA());
    using LayoutSFB = decltype(ScaleConfig::deduce_layoutSFB());
    static constexpr int out_alignment = 16 / int(sizeof(ElementOut));

    using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
        cutlass::epilogue::collective::EpilogueTileAuto, float, float, ElementOut,
        cutlass::layout::RowMajor, out_alignment, ElementOut, cutlass::layout::RowMajor,
        out_alignment, cutlass::epilogue::TmaWarpSpecializedCooperative,
        cutlass::epilogue::fusion::LinearCombination<ElementOut, float, ElementOut,
                                                     float>>::CollectiveOp;

    using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, cutlass::float_e4m3_t,
        cute::tuple<cutlass::layout::RowMajor, LayoutSFA>, 16, cutlass::float_e4m3_t,
        cute::tuple<cutlass::layout::ColumnMajor, LayoutSFB>, 16, float, TileShape, ClusterShape,
        cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
            sizeof(typename Epilogue::SharedStorage))>,
        cutlass::gemm::KernelTmaWarpSpecializedCooperativeFP8BlockScaledAccum>::CollectiveOp;

    using GemmKernel =
        cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue,
                                             cutlass::gemm::PersistentScheduler>;
    using Gemm = cutlass::gemm::device::GemmUniversalAdapter<GemmKernel>;
};

void check_status(cutlass::Status s, const char* what) {
    if (s != cutlass::Status::kSuccess)
        throw Error(std::string("microscaled GEMM: CUTLASS ") + what +
                    " failed: " + cutlassGetStatusString(s));
}

// Runs the kernel on aligned operands (k % 16 == 0, rows of out 16-byte aligned). `workspace`
// grows to what the kernel asks for.
template <int GranularityN, class ElementOut>
void run_aligned(const MicroscaledGemmArgs& g, Buffer<uint8_t>& workspace, int sm_count,
                 cudaStream_t stream) {
    using K = Kernel<GranularityN, ElementOut>;
    using Gemm = typename K::Gemm;
    const int m = int(g.m), n = int(g.n), k = int(g.k);
    const int kb = (k + 127) / 128;
    const int sa_stride = int(microscaled_a_scale_stride(g.m));
    const int sb_stride = GranularityN == 1 ? n : (n + 127) / 128;
    // Scale layouts by hand: ScaleConfig's own would give a's rows no padding, which TMA needs.
    // Padding rows (≥ m) only scale output rows that are never stored.
    typename K::LayoutSFA layout_sfa = make_layout(
        make_shape(make_shape(_1{}, sa_stride), make_shape(_128{}, kb), 1),
        make_stride(make_stride(_0{}, _1{}), make_stride(_0{}, sa_stride), sa_stride * kb));
    typename K::LayoutSFB layout_sfb = make_layout(
        make_shape(make_shape(Int<GranularityN>{}, sb_stride), make_shape(_128{}, kb), 1),
        make_stride(make_stride(_0{}, _1{}), make_stride(_0{}, sb_stride), sb_stride * kb));
    using StrideA = typename Gemm::GemmKernel::StrideA;
    using StrideB = typename Gemm::GemmKernel::StrideB;
    using StrideC = typename Gemm::GemmKernel::StrideC;
    using StrideD = typename Gemm::GemmKernel::StrideD;
    StrideA stride_a = make_stride(int64_t(k), _1{}, int64_t(m) * k);
    StrideB stride_b = make_stride(int64_t(k), _1{}, int64_t(n) * k);
    StrideC stride_c = make_stride(int64_t(n), _1{}, int64_t(m) * n);
    StrideD stride_d = stride_c;

    auto* out = static_cast<ElementOut*>(g.out);
    typename Gemm::Arguments args{cutlass::gemm::GemmUniversalMode::kGemm,
                                  {m, n, k, 1},
                                  {reinterpret_cast<const cutlass::float_e4m3_t*>(g.a), stride_a,
                                   reinterpret_cast<const cutlass::float_e4m3_t*>(g.b), stride_b,
                                   g.a_scales, layout_sfa, g.b_scales, layout_sfb},
                                  {{}, out, stride_c, out, stride_d}};
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.alpha_ptr = g.alpha;
    args.epilogue.thread.beta = g.beta;
    args.hw_info.device_id = 0;
    args.hw_info.sm_count = sm_count;

    Gemm gemm;
    check_status(gemm.can_implement(args), "can_implement");
    workspace.resize(int64_t(Gemm::get_workspace_size(args)));
    check_status(gemm.initialize(args, workspace.data(), stream), "initialize");
    check_status(gemm.run(stream), "run");
}

int64_t round_up(int64_t x, int64_t to) {
    return (x + to - 1) / to * to;
}

// A rows × cols matrix copied into a dst_rows × pitch one (in elements), zero padded.
template <typename T>
const T* pad(const T* src, int64_t rows, int64_t cols, int64_t dst_rows, int64_t pitch,
             Buffer<T>& dst, cudaStream_t stream) {
    dst.resize(dst_rows * pitch);
    OCTET_CUDA_CHECK(cudaMemsetAsync(dst.data(), 0, dst.bytes(), stream));
    OCTET_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), size_t(pitch) * sizeof(T), src,
                                       size_t(cols) * sizeof(T), size_t(cols) * sizeof(T),
                                       size_t(rows), cudaMemcpyDeviceToDevice, stream));
    return dst.data();
}

template <class ElementOut>
void run_kernel(const MicroscaledGemmArgs& g, Buffer<uint8_t>& workspace, int sm_count,
                cudaStream_t stream) {
    if (g.b_scaling == MicroscaledB::blocks_128x128)
        run_aligned<128, ElementOut>(g, workspace, sm_count, stream);
    else
        run_aligned<1, ElementOut>(g, workspace, sm_count, stream);
}

} // namespace

MicroscaledGemm::MicroscaledGemm(Memory& memory)
    : a_padded_(memory), b_padded_(memory), out_padded_(memory), workspace_(memory),
      b_scales_padded_(memory) {
    int device = 0;
    OCTET_CUDA_CHECK(cudaGetDevice(&device));
    OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
}

void MicroscaledGemm::run(const MicroscaledGemmArgs& args, cudaStream_t stream) {
    if (args.m < 0 || args.n < 0 || args.k < 0 || args.m > INT32_MAX || args.n > INT32_MAX ||
        args.k > INT32_MAX)
        throw Error("microscaled GEMM: shape " + std::to_string(args.m) + "x" +
                    std::to_string(args.n) + "x" + std::to_string(args.k) + " out of range");
    if (!args.out_fp32 && args.beta != 0.0f)
        throw Error("microscaled GEMM: beta needs FP32 output");
    if (args.m == 0 || args.n == 0) return;
    const size_t out_bytes = args.out_fp32 ? 4 : 2;
    if (args.k == 0) {
        if (args.beta == 0.0f)
            OCTET_CUDA_CHECK(
                cudaMemsetAsync(args.out, 0, size_t(args.m * args.n) * out_bytes, stream));
        else if (args.beta != 1.0f)
            throw Error("microscaled GEMM: k = 0 with beta other than 0 or 1");
        return;
    }
    // TMA wants 16-byte row pitches: k is padded with zero codes, n with zero rows of b (and
    // zero group scales), and the extra columns of out dropped after.
    MicroscaledGemmArgs g = args;
    const int64_t kp = round_up(args.k, 16), np = round_up(args.n, int64_t(16 / out_bytes));
    if (kp != args.k) g.a = pad(args.a, args.m, args.k, args.m, kp, a_padded_, stream);
    if (kp != args.k || np != args.n) g.b = pad(args.b, args.n, args.k, np, kp, b_padded_, stream);
    if (np != args.n && args.b_scaling == MicroscaledB::groups_1x128)
        g.b_scales = pad(args.b_scales, (args.k + 127) / 128, args.n, (args.k + 127) / 128, np,
                         b_scales_padded_, stream);
    g.k = kp;
    g.n = np;
    const size_t row_bytes = size_t(args.n) * out_bytes, padded_row_bytes = size_t(np) * out_bytes;
    if (np != args.n) {
        out_padded_.resize(args.m * int64_t(padded_row_bytes));
        if (args.beta != 0.0f)
            OCTET_CUDA_CHECK(cudaMemcpy2DAsync(out_padded_.data(), padded_row_bytes, args.out,
                                               row_bytes, row_bytes, size_t(args.m),
                                               cudaMemcpyDeviceToDevice, stream));
        g.out = out_padded_.data();
    }
    if (args.out_fp32)
        run_kernel<float>(g, workspace_, sm_count_, stream);
    else
        run_kernel<cutlass::bfloat16_t>(g, workspace_, sm_count_, stream);
    if (np != args.n)
        OCTET_CUDA_CHECK(cudaMemcpy2DAsync(args.out, row_bytes, out_padded_.data(),
                                           padded_row_bytes, row_bytes, size_t(args.m),
                                           cudaMemcpyDeviceToDevice, stream));
}

} // namespace octet::cuda
