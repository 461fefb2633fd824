// Backend selection (see backend.h).
#include "train/backend.h"

#include "common/error.h"
#include "cpu/cpu_ops.h"
#ifdef OCTET_WITH_CUDA
#include "cuda/cuda_ops.h"
#endif

namespace octet {

Backend make_backend(const std::string& device) {
    if (device != "auto" && device != "cpu" && device != "cuda")
        throw Error("device must be auto, cpu or cuda (got '" + device + "')");
#ifdef OCTET_WITH_CUDA
    if (device != "cpu") {
        if (cuda::device_available()) return {std::make_unique<cuda::CudaOps>(), "cuda"};
        if (device == "cuda") throw Error("device cuda: no CUDA device is present");
    }
#else
    if (device == "cuda")
        throw Error("device cuda: this build of Octet has no CUDA backend (nvcc was not found "
                    "when it was configured)");
#endif
    return {std::make_unique<CpuOps<float>>(), "cpu"};
}

} // namespace octet
