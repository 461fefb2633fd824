// A training step (see train_step.h).
#include "train/train_step.h"

#include "common/error.h"

namespace octet {

TrainStep::TrainStep(Gpt<float>& model, AdamW& optimizer, Ops<float>& ops,
                     const PrecisionPolicy& policy, bool graphs)
    : model_(model), optimizer_(optimizer), ops_(ops) {
    if (!graphs)
        why_eager_ = "graphs turned off";
    else if (!ops.records())
        why_eager_ = "the backend runs ops as they are called";
    else if (policy.plans_change_every_step())
        why_eager_ = "recipe " + policy.name + " plans each step from amaxes read on the host";
    graphs_ = why_eager_.empty();
}

TrainStep::~TrainStep() = default;

void TrainStep::run_part(Part& part, std::pair<int64_t, int64_t> shape, bool steady,
                         const std::function<void()>& enqueue) {
    if (!graphs_ || part.shape != shape) {
        part.graph.reset();
        enqueue();
        part.shape = shape;
        return;
    }
    if (!steady) { // a plan other than the recorded one (MOSS's re-sync): this time, eagerly
        enqueue();
        ++eager_runs_;
        return;
    }
    if (!part.graph || part.layout != ops_.memory().layout_version()) {
        part.graph = ops_.record(enqueue);
        part.layout = ops_.memory().layout_version();
        ++recordings_;
    }
    part.graph->replay();
}

StepResult TrainStep::run(const std::vector<MicroBatch>& micro, int64_t batch, int64_t seq,
                          double lr) {
    if (micro.empty()) throw Error("train step: no micro-batch");
    double loss = 0;
    for (size_t i = 0; i < micro.size(); ++i) {
        model_.set_batch(micro[i].tokens, micro[i].targets, batch, seq);
        // The first micro-batch's gradients replace the last step's: no zeroing pass.
        const auto gradients =
            i == 0 ? Gpt<float>::Gradients::overwrite : Gpt<float>::Gradients::accumulate;
        run_part(i == 0 ? first_micro_ : micro_, {batch, seq}, model_.plans_steady(), [&] {
            model_.forward_batch();
            model_.backward(gradients);
        });
        loss += double(model_.batch_loss());
    }
    optimizer_.prepare(lr);
    const int64_t accumulated = int64_t(micro.size());
    run_part(update_, {accumulated, 0}, true, [&] {
        if (accumulated > 1) // the gradient of the mean over micro-batches
            ops_.scale(model_.params().grads(), 1.0 / double(accumulated), model_.params().size());
        optimizer_.enqueue(model_.params().values(), model_.params().grads());
        model_.advance_weight_bounds(optimizer_.hyper());
    });
    const double norm = optimizer_.grad_norm();
    model_.on_optimizer_step(optimizer_.last_step());
    return {loss / double(accumulated), norm};
}

} // namespace octet
