// Ops recorded as a CUDA graph (Ops::record on the GPU): the ops a callable enqueues are captured
// from the backend's stream, instantiated once, and replay() launches them all at once, so a step
// of small kernels is not held back by a launch each.
#pragma once

#include <cuda_runtime.h>
#include <functional>

#include "ops/ops.h"

namespace octet::cuda {

class CudaGraph final : public OpsGraph {
  public:
    // Captures what `enqueue` issues on `stream`, running none of it. Throws Error where it
    // cannot be captured: a wait for the device, a copy to or from the host's memory, or an
    // allocation (DeviceMemory names it); the stream is left out of capture either way.
    CudaGraph(cudaStream_t stream, const std::function<void()>& enqueue);
    ~CudaGraph() override;
    CudaGraph(const CudaGraph&) = delete;
    CudaGraph& operator=(const CudaGraph&) = delete;
    void replay() override;

  private:
    cudaStream_t stream_;
    cudaGraphExec_t exec_ = nullptr;
};

// Whether `stream` is being captured into a graph.
bool capturing(cudaStream_t stream);

} // namespace octet::cuda
