// Where a training step's GPU time goes, op by op: when enabled, every CudaOps call is bracketed
// by CUDA events on the backend's stream, and report() sums the elapsed times per op name
// (`octet bench train --profile`). Disabled, a scope costs one branch. Names with a dot
// ("linear.dgrad") are parts of an op, timed inside its scope.
#pragma once

#include <cuda_runtime.h>
#include <string>
#include <vector>

namespace octet::cuda {

class OpProfiler {
  public:
    struct Entry {
        std::string name;
        int64_t calls = 0;
        double ms = 0;
    };

    class Scope {
      public:
        Scope(OpProfiler* profiler, const char* name);
        ~Scope();
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;

      private:
        OpProfiler* profiler_;
        const char* name_;
        cudaEvent_t start_ = nullptr;
    };

    explicit OpProfiler(cudaStream_t stream) : stream_(stream) {}
    ~OpProfiler();
    void enable(bool on) { enabled_ = on; }
    bool enabled() const { return enabled_; }
    Scope scope(const char* name) { return Scope(enabled_ ? this : nullptr, name); }
    // Waits for the stream, then returns the totals since the last report (largest first) and
    // clears them.
    std::vector<Entry> report();

  private:
    struct Pending {
        const char* name;
        cudaEvent_t start, stop;
    };
    cudaStream_t stream_;
    bool enabled_ = false;
    std::vector<Pending> pending_;
};

} // namespace octet::cuda
