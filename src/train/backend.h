// The compute backend a run asks for: `cpu`, `cuda`, or `auto` (the GPU when Octet was built with
// CUDA, a device is present and the backend runs the precision policy; else the CPU).
#pragma once

#include <memory>
#include <string>

#include "ops/ops.h"
#include "recipe/policy.h"

namespace octet {

struct Backend {
    std::unique_ptr<Ops<float>> ops;
    std::string device; // "cpu" or "cuda"
    std::string note;   // why `auto` chose the CPU, when a GPU is present; else empty
};

// Throws Error when `cuda` is asked for and cannot be had: not built, no device, or a policy the
// CUDA backend does not run yet (FP8-LM optimizer storage runs on the CPU only).
Backend make_backend(const std::string& device, const PrecisionPolicy& policy);

} // namespace octet
