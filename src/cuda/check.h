// Error checks for CUDA runtime calls: OCTET_CUDA_CHECK(call) throws octet::Error naming the call,
// the error and file:line. Library code throws; the mains decide to exit.
#pragma once

#include <cuda_runtime.h>
#include <string>

#include "common/error.h"

namespace octet {

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* call, const char* file,
                                          int line) {
    throw Error(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                ") in " + call + " at " + file + ":" + std::to_string(line));
}

} // namespace octet

#define OCTET_CUDA_CHECK(call)                                                                     \
    do {                                                                                           \
        const cudaError_t octet_err_ = (call);                                                     \
        if (octet_err_ != cudaSuccess)                                                             \
            ::octet::throw_cuda_error(octet_err_, #call, __FILE__, __LINE__);                      \
    } while (0)
