// How closely a GPU GEMM's output matches its reference, by DeepGEMM's measure
// calc_diff = 1 − 2Σxy/Σ(x²+y²) and the relative Frobenius error, in double; NaN is flagged
// apart so that it can never pass.
#pragma once

#include <cmath>
#include <cstddef>

namespace octet::testing {

struct GemmAgreement {
    double calc_diff, rel_error;
    bool any_nan;
};

// ref(i) and got(i) give element i as double.
template <typename Ref, typename Got>
GemmAgreement gemm_agreement(size_t n, Ref ref, Got got) {
    double xy = 0, xx_yy = 0, err = 0, norm = 0;
    bool nan = false;
    for (size_t i = 0; i < n; ++i) {
        const double x = ref(i), y = got(i);
        nan |= std::isnan(y);
        xy += x * y;
        xx_yy += x * x + y * y;
        err += (x - y) * (x - y);
        norm += x * x;
    }
    return {1 - 2 * xy / xx_yy, std::sqrt(err / norm), nan};
}

} // namespace octet::testing
