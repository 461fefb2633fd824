// A small deterministic random number generator (splitmix64), identical on every platform, so a
// seed names the same synthetic tensor everywhere (std::normal_distribution does not promise that).
#pragma once

#include <cmath>
#include <cstdint>

namespace octet {

class Rng {
  public:
    // A seed, or a state() saved earlier: Rng(r.state()) continues r's sequence exactly.
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t state() const { return state_; }

    uint64_t next_u64() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

    // Standard normal by Box-Muller (one value per call; the partner is dropped for simplicity).
    double normal() {
        const double u1 = 1.0 - uniform(); // (0, 1]: log is finite
        const double u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

  private:
    uint64_t state_;
};

} // namespace octet
