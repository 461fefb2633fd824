// GPU benchmarks. `octet bench gemm`: TFLOPS of the GPU GEMMs at the training shapes of issue 6 (M
// = 16384 tokens by the GPT-2 124M, 1.3B and 7B projections, and 8192³): cuBLASLt BF16, FP8
// per-tensor (fast accumulation) and FP8 block-wise (1×128 · 128×128), and Octet's microscaled
// GEMM (cuda/microscaled_gemm.h) on the block-wise operands and on MOSS's (1×128 and 1×32 local
// scales, a per-tensor weight scale); `--shapes` picks rows, so that a profiler sees only their
// kernels. Median of 20 timed runs after 5 warm-ups, CUDA events, uniformly random operands
// (cuda/random_fill.h); needs a build with CUDA and a GPU.
#include <algorithm>
#include <cstdio>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"

#if defined(OCTET_WITH_CUDA)
#include <cuda_runtime.h>

#include "cuda/cast.h"
#include "cuda/check.h"
#include "cuda/cuda_ops.h"
#include "cuda/device_memory.h"
#include "cuda/fp8_transpose.h"
#include "cuda/gemm.h"
#include "cuda/microscaled_gemm.h"
#include "cuda/quantize_plan.h"
#include "cuda/random_fill.h"
#include "cuda/transpose.h"
#include "recipe/recipes.h"
#endif

namespace octet {

// Prints `help` when the first argument asks for it: true when it did.
static bool printed_help(const char* help, const std::vector<std::string>& argv,
                         std::ostream& out) {
    if (argv.empty() || (argv[0] != "--help" && argv[0] != "-h")) return false;
    out << help;
    return true;
}

#if defined(OCTET_WITH_CUDA)
namespace {

// Median time of 20 runs of f after 5 warm-ups, in milliseconds, by CUDA events.
template <typename F>
double median_event_ms(const F& f) {
    cudaEvent_t e0, e1;
    OCTET_CUDA_CHECK(cudaEventCreate(&e0));
    OCTET_CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<float> ms;
    for (int i = 0; i < 25; ++i) {
        OCTET_CUDA_CHECK(cudaEventRecord(e0));
        f();
        OCTET_CUDA_CHECK(cudaEventRecord(e1));
        OCTET_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0;
        OCTET_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (i >= 5) ms.push_back(t);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    std::sort(ms.begin(), ms.end());
    return double(ms[ms.size() / 2]);
}

} // namespace
#endif

namespace {

struct GemmShape {
    std::string name;
    int64_t m, n, k;
};

// The shapes of `octet bench gemm`, or those named in --shapes (comma-separated, as the table
// names them: "1.3B fc2,8192^3").
std::vector<GemmShape> bench_gemm_shapes(const std::vector<std::string>& argv) {
    const std::vector<GemmShape> all = {
        {"124M qkv", 16384, 2304, 768},   {"124M fc", 16384, 3072, 768},
        {"124M fc2", 16384, 768, 3072},   {"1.3B qkv", 16384, 6144, 2048},
        {"1.3B proj", 16384, 2048, 2048}, {"1.3B fc", 16384, 8192, 2048},
        {"1.3B fc2", 16384, 2048, 8192},  {"7B qkv", 16384, 12288, 4096},
        {"7B proj", 16384, 4096, 4096},   {"7B fc", 16384, 11008, 4096},
        {"7B fc2", 16384, 4096, 11008},   {"8192^3", 8192, 8192, 8192},
    };
    if (argv.empty()) return all;
    if (argv[0] != "--shapes")
        throw Error("octet bench gemm takes --help or --shapes NAMES (got '" + argv[0] + "')");
    if (argv.size() != 2)
        throw Error(argv.size() == 1
                        ? "octet bench gemm: --shapes needs a value"
                        : "octet bench gemm: one --shapes, then nothing (got '" + argv[2] + "')");
    std::vector<GemmShape> chosen;
    size_t begin = 0;
    while (begin <= argv[1].size()) {
        const size_t end = std::min(argv[1].find(',', begin), argv[1].size());
        const std::string name = argv[1].substr(begin, end - begin);
        const auto found = std::find_if(all.begin(), all.end(),
                                        [&](const GemmShape& s) { return s.name == name; });
        if (found == all.end()) {
            std::string names;
            for (const GemmShape& s : all) names += (names.empty() ? "'" : ", '") + s.name + "'";
            throw Error("octet bench gemm: unknown shape '" + name + "' in --shapes (" + names +
                        ")");
        }
        chosen.push_back(*found);
        begin = end + 1;
    }
    return chosen;
}

} // namespace

int cmd_bench_gemm(const std::vector<std::string>& argv, std::ostream& out) {
    if (printed_help("usage: octet bench gemm [--shapes NAMES]\n\nTFLOPS of cuBLASLt BF16, FP8 "
                     "per-tensor and FP8 block-wise GEMMs, and of\nOctet's microscaled GEMM "
                     "(1x128 . 128x128; 1x128 and 1x32 . per-tensor), at M = 16384 and the "
                     "GPT-2\n124M, 1.3B and 7B projection shapes, plus 8192^3.\n\n  --shapes "
                     "NAMES  only these rows, comma-separated as the table names them\n"
                     "                  (\"1.3B fc2,8192^3\")\n",
                     argv, out))
        return 0;
    const std::vector<GemmShape> shapes = bench_gemm_shapes(argv);
#if !defined(OCTET_WITH_CUDA)
    throw Error(
        "octet bench gemm needs a build with CUDA (nvcc was not found when this was built)");
#else
    if (!cuda::device_available()) throw Error("octet bench gemm: no GPU");
    cudaDeviceProp prop{};
    OCTET_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int64_t max_elems = 0;
    for (const GemmShape& s : shapes)
        max_elems = std::max({max_elems, s.m * s.k, s.n * s.k, s.m * s.n});
    void *a = nullptr, *b = nullptr, *out_buf = nullptr;
    float *sa = nullptr, *sb = nullptr;
    OCTET_CUDA_CHECK(cudaMalloc(&a, size_t(max_elems) * 2));
    OCTET_CUDA_CHECK(cudaMalloc(&b, size_t(max_elems) * 2));
    OCTET_CUDA_CHECK(cudaMalloc(&out_buf, size_t(max_elems) * 2));
    OCTET_CUDA_CHECK(cudaMalloc(&sa, size_t(max_elems / 32 + 4) * 4));
    OCTET_CUDA_CHECK(cudaMalloc(&sb, size_t(max_elems / 32 + 4) * 4));
    std::vector<float> ones(size_t(max_elems / 32 + 4), 1.0f);
    OCTET_CUDA_CHECK(cudaMemcpy(sa, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
    OCTET_CUDA_CHECK(cudaMemcpy(sb, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
    cuda::CublasLtGemm gemm;
    cuda::DeviceMemory memory(nullptr);
    cuda::MicroscaledGemm microscaled(memory);
    // Fresh random operands of the GEMM's format: constant data would flatter the clocks.
    auto fill = [&](const GemmShape& s, Format f) {
        cuda::fill_random(a, s.m * s.k, f, f == Format::bf16 ? 1.0f : 448.0f, 1, nullptr);
        cuda::fill_random(b, s.n * s.k, f, f == Format::bf16 ? 1.0f : 448.0f, 2, nullptr);
    };
    auto tflops_of = [](const GemmShape& s, double ms) {
        return 2.0 * double(s.m) * double(s.n) * double(s.k) / (ms * 1e-3) / 1e12;
    };
    auto tflops = [&](const GemmShape& s, cuda::GemmScaling scaling) {
        const Format f = scaling == cuda::GemmScaling::bf16 ? Format::bf16 : Format::e4m3;
        fill(s, f);
        const cuda::GemmArgs args{a,   b,   f,       f,
                                  sa,  sb,  scaling, static_cast<__nv_bfloat16*>(out_buf),
                                  s.m, s.n, s.k,     scaling == cuda::GemmScaling::per_tensor};
        return tflops_of(s, median_event_ms([&] { gemm.run(args, nullptr); }));
    };
    // Octet's GEMM: a with 1×G scales; b with 128×128 block scales (DeepSeek) or one scale in
    // alpha (MOSS's predicted weight scale).
    auto octet_tflops = [&](const GemmShape& s, int group, cuda::MicroscaledB b_scaling) {
        fill(s, Format::e4m3);
        const cuda::MicroscaledGemmArgs args{static_cast<const uint8_t*>(a),
                                             static_cast<const uint8_t*>(b),
                                             sa,
                                             sb,
                                             b_scaling,
                                             group,
                                             Format::e4m3,
                                             nullptr,
                                             out_buf,
                                             false,
                                             0.0f,
                                             s.m,
                                             s.n,
                                             s.k};
        return tflops_of(s, median_event_ms([&] { microscaled.run(args, nullptr); }));
    };
    char line[200];
    out << "device " << prop.name << ", cuBLASLt " << cublasLtGetVersion()
        << ", TFLOPS (median of 20), BF16 output\n";
    out << "cuBLASLt: BF16, FP8 per-tensor, FP8 block-wise 1x128.128x128\n"
           "Octet: 1x128.128x128 (as block), 1x128 and 1x32 with a per-tensor b (MOSS)\n";
    std::snprintf(line, sizeof line, "%-10s %6s %6s %6s %6s %7s %6s %6s %7s %7s %7s %8s %7s\n",
                  "shape", "M", "N", "K", "BF16", "tensor", "block", "Octet", "/block", "/tensor",
                  "G128pt", "/tensor", "G32pt");
    out << line << std::string(104, '-') << "\n";
    using B = cuda::MicroscaledB;
    for (const GemmShape& s : shapes) {
        const double bf = tflops(s, cuda::GemmScaling::bf16),
                     pt = tflops(s, cuda::GemmScaling::per_tensor),
                     bw = tflops(s, cuda::GemmScaling::blockwise),
                     oc = octet_tflops(s, 128, B::blocks_128x128),
                     o128 = octet_tflops(s, 128, B::per_tensor),
                     o32 = octet_tflops(s, 32, B::per_tensor);
        std::snprintf(line, sizeof line,
                      "%-10s %6lld %6lld %6lld %6.0f %7.0f %6.0f %6.0f %7.2f %7.2f %7.0f %8.2f "
                      "%7.0f\n",
                      s.name.c_str(), static_cast<long long>(s.m), static_cast<long long>(s.n),
                      static_cast<long long>(s.k), bf, pt, bw, oc, oc / bw, oc / pt, o128,
                      o128 / pt, o32);
        out << line << std::flush;
    }
    for (void* p : {a, b, out_buf, (void*)sa, (void*)sb}) cudaFree(p);
    return 0;
#endif
}

// `octet bench quant`: bandwidth of the quantization kernels at 16384 × 4096 BF16, against a
// device-to-device copy of the same tensor (the bandwidth a one-pass kernel can hope for).
int cmd_bench_quant(const std::vector<std::string>& argv, std::ostream& out) {
    if (printed_help("usage: octet bench quant\n\nGB/s of the quantization and transpose kernels "
                     "at 16384 x 4096 BF16,\nagainst a device-to-device copy of the same tensor.\n",
                     argv, out))
        return 0;
    if (!argv.empty()) throw Error("octet bench quant takes no arguments (got '" + argv[0] + "')");
#if !defined(OCTET_WITH_CUDA)
    throw Error(
        "octet bench quant needs a build with CUDA (nvcc was not found when this was built)");
#else
    if (!cuda::device_available()) throw Error("octet bench quant: no GPU");
    const int64_t rows = 16384, cols = 4096, n = rows * cols;
    cuda::DeviceMemory memory(nullptr);
    Buffer<uint16_t> x(memory, n), copy(memory, n);
    cuda::fill_random(x.data(), n, Format::bf16, 8.0f, 3, nullptr);
    const auto* x_bf16 = reinterpret_cast<const __nv_bfloat16*>(x.data());
    const double copy_ms = median_event_ms([&] {
        OCTET_CUDA_CHECK(
            cudaMemcpyAsync(copy.data(), x.data(), size_t(n) * 2, cudaMemcpyDeviceToDevice));
    });
    const double copy_gbs = 2.0 * double(n) * 2 / (copy_ms * 1e-3) / 1e9;
    char line[160];
    std::snprintf(line, sizeof line, "%-34s %9s %9s %12s\n", "kernel (16384 x 4096 BF16 in)", "ms",
                  "GB/s", "of copy BW");
    out << line << std::string(68, '-') << "\n";
    std::snprintf(line, sizeof line, "%-34s %9.3f %9.0f %12s\n", "device copy (read + write BF16)",
                  copy_ms, copy_gbs, "100%");
    out << line;
    auto report = [&](const char* name, double ms, double bytes) {
        const double gbs = bytes / (ms * 1e-3) / 1e9;
        std::snprintf(line, sizeof line, "%-34s %9.3f %9.0f %11.0f%%\n", name, ms, gbs,
                      100 * gbs / copy_gbs);
        out << line << std::flush;
    };
    cuda::PlanRunner runner(memory);
    cuda::Fp8Transposer transposer(memory, runner);
    cuda::DeviceQuantized q(memory), t(memory);
    // The FP8 layers' x and dy in training: both orientations from one read of BF16 (2 B read,
    // 2 × 1 B written), MOSS's after a pass for the tensor's amax (2 B more).
    for (auto [name, spec, bytes, group] :
         {std::tuple{"both orientations 1x128 (block-wise)", "blockwise", 4.0, int64_t(128)},
          {"both orientations MX 1x32", "mxfp8", 4.0, int64_t(32)},
          {"both orientations MOSS G=32", "moss", 6.0, int64_t(32)}}) {
        const auto quantizer = make_recipe(spec)->make_quantizer(TensorRole::activation);
        const double ms = median_event_ms([&] {
            transposer.quantize_both(*quantizer, *quantizer, x_bf16, rows, cols, q, t, nullptr);
        });
        report(name, ms, double(n) * bytes + double(n / group) * 8);
    }
    {
        // Activations between FP8 layers, quantized (block-wise) as they are computed from their
        // BF16 inputs: GELU from x (2 B read), its gradient from x and d_out (4 B read).
        const auto* d_out = reinterpret_cast<const __nv_bfloat16*>(copy.data());
        const auto quantizer = make_recipe("blockwise")->make_quantizer(TensorRole::activation);
        using Op = cuda::ElementwiseSource::Op;
        for (auto [name, op, bytes] : {std::tuple{"both 1x128, GELU as computed", Op::gelu, 4.0},
                                       {"both 1x128, GELU' as computed", Op::gelu_backward, 6.0}}) {
            const cuda::ElementwiseSource source{op, x_bf16, op == Op::gelu ? nullptr : d_out};
            const double ms = median_event_ms([&] {
                transposer.quantize_both(*quantizer, *quantizer, source, rows, cols, q, t, nullptr);
            });
            report(name, ms, double(n) * bytes + double(n / 128) * 8);
        }
    }
    // From FP32: the block-wise plan, the backward's column-wise copy quantized from the same
    // tensor (1x128 along the other axis), and both in one pass.
    Buffer<float> x32(memory, n);
    cuda::cast_from_format(x.data(), x32.data(), n, Format::bf16, nullptr);
    const auto blockwise = make_block_quantizer(Format::e4m3, {1, 128}, ScaleEncoding::fp32,
                                                ScaleRule::from_amax(Format::e4m3, 0, false));
    const QuantizePlan plan = blockwise->plan(0.0f);
    double ms = median_event_ms([&] { runner.run(x32.data(), rows, cols, plan, q, nullptr); });
    report("plan 1x128 from FP32", ms, double(n) * 5 + double(n / 128) * 4);
    ms = median_event_ms([&] {
        transposer.run(q, TransposeMethod::from_source, *blockwise, x32.data(), t, nullptr);
    });
    report("transposed 1x128 from FP32", ms, double(n) * 5 + double(n / 128) * 4);
    // Both in one pass: 4 B read, 2 × 1 B written.
    ms = median_event_ms([&] {
        transposer.quantize_both(*blockwise, *blockwise, x32.data(), rows, cols, q, t, nullptr);
    });
    report("both orientations 1x128 from FP32", ms, double(n) * 6 + double(n / 128) * 8);
    // Power-of-two 1x128 codes for the scaling-aware transpose below.
    runner.run(x32.data(), rows, cols,
               QuantizePlan::blocks_plan(Format::e4m3, {1, 128}, ScaleEncoding::fp32,
                                         ScaleRule::from_amax(Format::e4m3, 0, true)),
               q, nullptr);
    {
        // The scaling-aware transpose of the power-of-two block-wise codes just made, and the
        // exact transpose of per-tensor scaled codes (TE's recipes, FP8-LM): bytes only.
        Buffer<uint8_t> t_codes(memory, n);
        Buffer<float> t_scales(memory, n / 128);
        ms = median_event_ms([&] {
            cuda::transpose_scaling_aware({q.codes.data(), q.levels[0].scale_inv.data(), rows, cols,
                                           Format::e4m3, t_codes.data(), t_scales.data()},
                                          nullptr);
        });
        report("scaling-aware transpose (FP8->FP8)", ms, double(n) * 2 + double(n / 128) * 8);
        ms = median_event_ms(
            [&] { cuda::transpose_codes(q.codes.data(), rows, cols, t_codes.data(), nullptr); });
        report("exact transpose (FP8 codes)", ms, double(n) * 2);
    }
    // The weights' plan: 128 x 128 blocks.
    const QuantizePlan weight_plan =
        QuantizePlan::blocks_plan(Format::e4m3, {128, 128}, ScaleEncoding::fp32,
                                  ScaleRule::from_amax(Format::e4m3, 0, false));
    ms = median_event_ms([&] { runner.run(x32.data(), rows, cols, weight_plan, q, nullptr); });
    report("plan 128x128 from FP32 (weights)", ms, double(n) * 5);
    return 0;
#endif
}

} // namespace octet
