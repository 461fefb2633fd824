// A training step (see train_step.h).
#include "train/train_step.h"

namespace octet {

StepResult train_step(Gpt<float>& model, AdamW& optimizer, const int32_t* tokens,
                      const int32_t* targets, int64_t batch, int64_t seq, double lr) {
    model.zero_grads();
    const float loss = model.forward(tokens, targets, batch, seq);
    model.backward();
    const double norm = optimizer.step(model.params().values(), model.params().grads(), lr);
    model.on_optimizer_step(optimizer.last_step());
    return {loss, norm};
}

} // namespace octet
