// Synthetic tensors with the statistics that make FP8 hard: heavy-tailed LLM activations.
#pragma once

#include <cstdint>
#include <vector>

namespace octet {

// tokens × channels activations: per-channel magnitudes spread log-normally (σ = 1), Student-t
// (ν = 3) values, 1% of channels (at least 2) carrying 20–100× outliers (the "massive activation"
// channels of LLMs), and one spike in 10,000 elements at 10–50×. Deterministic in `seed`.
std::vector<float> heavy_tailed_activations(int64_t tokens, int64_t channels, uint64_t seed);

} // namespace octet
