// Backend selection (see backend.h).
#include "train/backend.h"

#include "common/error.h"
#include "cpu/cpu_ops.h"
#ifdef OCTET_WITH_CUDA
#include "cuda/cuda_ops.h"
#endif

namespace octet {

#ifdef OCTET_WITH_CUDA
namespace {

// What the CUDA backend runs today: every GEMM precision, FP32 optimizer storage.
bool cuda_runs(const PrecisionPolicy& p) {
    return p.fp32_optimizer_storage();
}

} // namespace
#endif

Backend make_backend(const std::string& device, [[maybe_unused]] const PrecisionPolicy& policy) {
    if (device != "auto" && device != "cpu" && device != "cuda")
        throw Error("device must be auto, cpu or cuda (got '" + device + "')");
#ifdef OCTET_WITH_CUDA
    const std::string unsupported = "recipe " + policy.name +
                                    " needs FP8-LM optimizer storage, which only the CPU "
                                    "backend runs in this version";
    if (device != "cpu") {
        const bool present = cuda::device_available();
        if (present && cuda_runs(policy)) return {std::make_unique<cuda::CudaOps>(), "cuda", ""};
        if (device == "cuda")
            throw Error(present ? "device cuda: " + unsupported + " (use --device cpu)"
                                : std::string("device cuda: no CUDA device is present"));
        if (present) return {std::make_unique<CpuOps<float>>(), "cpu", unsupported};
    }
#else
    if (device == "cuda")
        throw Error("device cuda: this build of Octet has no CUDA backend (nvcc was not found "
                    "when it was configured)");
#endif
    return {std::make_unique<CpuOps<float>>(), "cpu", ""};
}

} // namespace octet
