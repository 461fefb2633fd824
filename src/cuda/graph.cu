// CudaGraph (see graph.h).
#include "cuda/check.h"
#include "cuda/graph.h"

namespace octet::cuda {

CudaGraph::CudaGraph(cudaStream_t stream, const std::function<void()>& enqueue) : stream_(stream) {
    // Thread-local mode: a call of this thread that could wait for the device or allocate while
    // the stream is captured fails at once, naming itself, instead of leaving a graph that
    // replays something other than what the step would have run.
    OCTET_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    try {
        enqueue();
    } catch (...) {
        cudaStreamEndCapture(stream, &graph); // ends the failed capture; its graph is dropped
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        throw;
    }
    OCTET_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    const cudaError_t e = cudaGraphInstantiate(&exec_, graph, 0);
    cudaGraphDestroy(graph);
    OCTET_CUDA_CHECK(e);
}

CudaGraph::~CudaGraph() {
    if (exec_) cudaGraphExecDestroy(exec_);
}

void CudaGraph::replay() {
    OCTET_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
}

bool capturing(cudaStream_t stream) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    OCTET_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
    return status != cudaStreamCaptureStatusNone;
}

} // namespace octet::cuda
