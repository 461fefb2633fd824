// Fidelity metrics (numerics/fidelity.h) on cases whose answers are known exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/error.h"
#include "numerics/fidelity.h"
#include "recipe/block_quantize.h"

namespace octet {
namespace {

QuantizedTensor unit_scale_e4m3(const std::vector<float>& x) {
    return quantize_per_tensor({x.data(), 1, int64_t(x.size())}, Format::e4m3, unit_scale());
}

TEST(Fidelity, ExactValuesGiveInfiniteSnrAndNoError) {
    const std::vector<float> x = {1.0f, -2.0f, 0.5f, 448.0f, std::ldexp(1.0f, -9)};
    const FidelityMetrics m = measure_fidelity({x.data(), 1, 5}, unit_scale_e4m3(x));
    EXPECT_TRUE(std::isinf(m.snr_db) && m.snr_db > 0);
    EXPECT_EQ(m.rel_error, 0.0);
    EXPECT_EQ(m.flushed_fraction, 0.0);
    EXPECT_EQ(m.saturated_fraction, 0.0);
}

TEST(Fidelity, KnownErrorGivesKnownSnr) {
    // 1.0625 is a tie between 1 and 1.125 → 1: error 0.0625 on a signal of 1.0625.
    const std::vector<float> x = {1.0625f};
    const FidelityMetrics m = measure_fidelity({x.data(), 1, 1}, unit_scale_e4m3(x));
    EXPECT_NEAR(m.snr_db, 10 * std::log10((1.0625 * 1.0625) / (0.0625 * 0.0625)), 1e-9);
    EXPECT_NEAR(m.rel_error, 0.0625 / 1.0625, 1e-12);
    EXPECT_NEAR(m.snr_rows_db, m.snr_db, 1e-9);
}

TEST(Fidelity, CountsFlushedAndSaturatedElements) {
    // Flushed: below half the smallest subnormal (2^-10). Saturated: beyond 464 (448 + half ulp).
    const std::vector<float> x = {1e-4f, -1e-5f, 1.0f, 460.0f, 500.0f, -1000.0f, 0.0f, 2.0f};
    const FidelityMetrics m = measure_fidelity({x.data(), 1, 8}, unit_scale_e4m3(x));
    EXPECT_DOUBLE_EQ(m.flushed_fraction, 2.0 / 7.0); // of the 7 non-zeros
    EXPECT_DOUBLE_EQ(m.saturated_fraction, 2.0 / 8.0);
}

TEST(Fidelity, NonFiniteInputsAreCountedAndExcluded) {
    const std::vector<float> x = {1.0f, std::numeric_limits<float>::quiet_NaN(),
                                  std::numeric_limits<float>::infinity(), 2.0f};
    const FidelityMetrics m = measure_fidelity({x.data(), 1, 4}, unit_scale_e4m3(x));
    EXPECT_EQ(m.nonfinite, 2);
    EXPECT_TRUE(std::isinf(m.snr_db));
}

TEST(Fidelity, RowSnrIsTheMeanOfPerRowSnrs) {
    const std::vector<float> x = {1.0625f, 1.0f, 1.1875f, 2.0f}; // two rows of two
    const QuantizedTensor q = quantize_per_tensor({x.data(), 2, 2}, Format::e4m3, unit_scale());
    const double row0 = 10 * std::log10((1.0625 * 1.0625 + 1.0) / (0.0625 * 0.0625));
    const double row1 = 10 * std::log10((1.1875 * 1.1875 + 4.0) / (0.0625 * 0.0625));
    EXPECT_NEAR(measure_fidelity({x.data(), 2, 2}, q).snr_rows_db, (row0 + row1) / 2, 1e-9);
}

TEST(Fidelity, ShapeMismatchIsAnError) {
    const std::vector<float> x = {1.0f, 2.0f};
    EXPECT_THROW(measure_fidelity({x.data(), 2, 1}, unit_scale_e4m3(x)), Error);
}

} // namespace
} // namespace octet
