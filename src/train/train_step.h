// One training step: zero the gradients, forward and backward over each micro-batch, their mean,
// the AdamW update, then tell the weight quantizers (MOSS weight scaling) that the weights moved.
//
// On a backend that records graphs (the GPU: Ops::record()), each of the step's two parts, a
// micro-batch's forward and backward and the update, runs eagerly the first time, so every buffer
// it needs is allocated, then is recorded once and replayed: one launch for hundreds of kernels.
// What varies between steps reaches the recorded ops through memory: the tokens
// (Gpt::set_batch) and the optimizer's hyperparameters (AdamW::prepare). A part is recorded
// again when a buffer may have moved (Memory::layout_version(): an evaluation or a sample in
// between allocated) or the batch's shape changed. Recipes whose quantizers keep state across
// steps (te-delayed, moss: PrecisionPolicy::quantizers_keep_state()) plan each step on the host,
// so their steps run eagerly.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/gpt.h"
#include "optim/adamw.h"

namespace octet {

struct StepResult {
    double loss;      // mean over the micro-batches
    double grad_norm; // before clipping
};

// A micro-batch: batch × seq tokens and their targets, on the host.
struct MicroBatch {
    const int32_t* tokens;
    const int32_t* targets;
};

class TrainStep {
  public:
    // `graphs`: record and replay where the backend and the recipe allow.
    TrainStep(Gpt<float>& model, AdamW& optimizer, Ops<float>& ops, const PrecisionPolicy& policy,
              bool graphs);
    ~TrainStep();
    TrainStep(const TrainStep&) = delete;
    TrainStep& operator=(const TrainStep&) = delete;

    StepResult run(const std::vector<MicroBatch>& micro, int64_t batch, int64_t seq, double lr);

    // Whether steps replay recorded graphs, and if not, why (for logs).
    bool graphs() const { return graphs_; }
    const std::string& why_eager() const { return why_eager_; }
    // Times a part was recorded so far (tests).
    int64_t recordings() const { return recordings_; }

  private:
    struct Part {
        std::unique_ptr<OpsGraph> graph;
        uint64_t layout = 0; // Memory::layout_version() when recorded
        // What the part's sizes follow, as it last ran eagerly: (batch, seq) for a micro-batch's
        // forward and backward, (micro-batches, 0) for the update; {0, 0}, which no step has,
        // before its first run.
        std::pair<int64_t, int64_t> shape{0, 0};
    };
    void run_part(Part& part, std::pair<int64_t, int64_t> shape,
                  const std::function<void()>& enqueue);

    Gpt<float>& model_;
    AdamW& optimizer_;
    Ops<float>& ops_;
    bool graphs_ = false;
    std::string why_eager_;
    Part micro_, update_;
    int64_t recordings_ = 0;
};

} // namespace octet
