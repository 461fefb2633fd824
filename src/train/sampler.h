// Text generation: autoregressive sampling with temperature and top-k from a trained model.
#pragma once

#include <string>
#include <vector>

#include "common/rng.h"
#include "model/gpt.h"

namespace octet {

// Appends `count` sampled tokens to `tokens` (the prompt), feeding the model at most its
// sequence length of context.
void sample_tokens(Gpt<float>& model, std::vector<int32_t>& tokens, int64_t count,
                   double temperature, int64_t top_k, Rng& rng);

} // namespace octet
