// The compute backend a run asks for: `cpu`, `cuda`, or `auto` (the GPU when Octet was built with
// CUDA and a device is present; else the CPU). Both backends run every precision policy.
#pragma once

#include <memory>
#include <string>

#include "ops/ops.h"

namespace octet {

struct Backend {
    std::unique_ptr<Ops<float>> ops;
    std::string device; // "cpu" or "cuda"
};

// Throws Error when `cuda` is asked for and cannot be had: not built, or no device.
Backend make_backend(const std::string& device);

} // namespace octet
