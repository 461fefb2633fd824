// One training step: forward and backward over each micro-batch (the first one's gradients
// replace the last step's, so nothing zeroes them: Gpt::Gradients::overwrite), their mean, the
// AdamW update and the advance of MOSS's predicted weight bounds, then tell the weight quantizers
// on the host that the weights moved.
//
// On a backend that records graphs (the GPU: Ops::record()), each of the step's parts, the first
// micro-batch's forward and backward, a later one's, and the update, runs eagerly the first
// time, so every buffer it needs is allocated, then is recorded once and replayed: one launch
// for hundreds of kernels. What varies between steps reaches the recorded ops through memory: the
// tokens (Gpt::set_batch), the optimizer's hyperparameters (AdamW::prepare) and MOSS's weight
// bounds, which the update advances on the device. A part is recorded again when a buffer may have
// moved (Memory::layout_version(): an evaluation or a sample in between allocated) or the batch's
// shape changed. A micro-batch whose plans differ from the recorded ones (Gpt::plans_steady():
// MOSS's re-sync every few hundred steps) runs eagerly, once. te-delayed plans each step from
// amaxes read back on the host (PrecisionPolicy::plans_change_every_step()), so its steps
// always run eagerly.
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
    // Times a part was recorded so far, and times a recorded part ran eagerly instead (tests).
    int64_t recordings() const { return recordings_; }
    int64_t eager_runs() const { return eager_runs_; }

  private:
    struct Part {
        std::unique_ptr<OpsGraph> graph;
        uint64_t layout = 0; // Memory::layout_version() when recorded
        // What the part's sizes follow, as it last ran eagerly: (batch, seq) for a micro-batch's
        // forward and backward, (micro-batches, 0) for the update; {0, 0}, which no step has,
        // before its first run.
        std::pair<int64_t, int64_t> shape{0, 0};
    };
    // `steady`: the part's plans are those a recording would replay.
    void run_part(Part& part, std::pair<int64_t, int64_t> shape, bool steady,
                  const std::function<void()>& enqueue);

    Gpt<float>& model_;
    AdamW& optimizer_;
    Ops<float>& ops_;
    bool graphs_ = false;
    std::string why_eager_;
    Part first_micro_, micro_, update_;
    int64_t recordings_ = 0, eager_runs_ = 0;
};

} // namespace octet
