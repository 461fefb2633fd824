// GPU tests skip, visibly, where there is no GPU (CI): GTEST_SKIP() << "skipped: no GPU".
#pragma once

#include <gtest/gtest.h>

#include "cuda/cuda_ops.h"

#define OCTET_SKIP_WITHOUT_GPU()                                                                   \
    do {                                                                                           \
        if (!::octet::cuda::device_available()) GTEST_SKIP() << "skipped: no GPU";                 \
    } while (0)
