// One training step on a model and its optimizer: zero gradients, forward, backward, update,
// then tell the weight quantizers (MOSS weight scaling) that the weights moved.
#pragma once

#include "model/gpt.h"
#include "optim/adamw.h"

namespace octet {

struct StepResult {
    float loss;
    double grad_norm;
};

StepResult train_step(Gpt<float>& model, AdamW& optimizer, const int32_t* tokens,
                      const int32_t* targets, int64_t batch, int64_t seq, double lr);

} // namespace octet
