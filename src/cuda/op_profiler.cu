// OpProfiler (see op_profiler.h).
#include <algorithm>
#include <map>

#include "cuda/check.h"
#include "cuda/op_profiler.h"

namespace octet::cuda {

OpProfiler::Scope::Scope(OpProfiler* profiler, const char* name)
    : profiler_(profiler), name_(name) {
    if (!profiler_) return;
    OCTET_CUDA_CHECK(cudaEventCreate(&start_));
    OCTET_CUDA_CHECK(cudaEventRecord(start_, profiler_->stream_));
}

OpProfiler::Scope::~Scope() {
    if (!profiler_) return;
    cudaEvent_t stop = nullptr;
    // A destructor must not throw: a failed event only loses this sample.
    if (cudaEventCreate(&stop) != cudaSuccess ||
        cudaEventRecord(stop, profiler_->stream_) != cudaSuccess) {
        cudaEventDestroy(start_);
        if (stop) cudaEventDestroy(stop);
        return;
    }
    profiler_->pending_.push_back({name_, start_, stop});
}

OpProfiler::~OpProfiler() {
    for (const Pending& p : pending_) {
        cudaEventDestroy(p.start);
        cudaEventDestroy(p.stop);
    }
}

std::vector<OpProfiler::Entry> OpProfiler::report() {
    OCTET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::map<std::string, Entry> totals;
    for (const Pending& p : pending_) {
        float ms = 0;
        OCTET_CUDA_CHECK(cudaEventElapsedTime(&ms, p.start, p.stop));
        Entry& e = totals[p.name];
        e.name = p.name;
        ++e.calls;
        e.ms += double(ms);
        cudaEventDestroy(p.start);
        cudaEventDestroy(p.stop);
    }
    pending_.clear();
    std::vector<Entry> out;
    for (auto& [name, e] : totals) out.push_back(e);
    std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.ms > b.ms; });
    return out;
}

} // namespace octet::cuda
