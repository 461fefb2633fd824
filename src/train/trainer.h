// The training loop of `octet train`: LR warm-up and cosine decay, gradient accumulation to a
// target batch in tokens, clipping, evaluation on the validation split every N steps, text samples,
// a live progress line on a terminal (plain log lines otherwise), metrics as JSON Lines, and
// checkpoints from which a run resumes bit for bit.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "train/train_config.h"

namespace octet {

struct TrainOptions {
    std::string resume;         // checkpoint to continue from ("" for a fresh run)
    std::string metrics_path;   // "" = <output.dir>/metrics.jsonl
    bool progress_line = false; // redraw one line (terminals) instead of printing log lines
};

struct TrainSummary {
    std::vector<float> losses; // per step of this invocation
    double train_loss = 0;     // mean of the last 10% of steps (at least 1)
    double val_loss = 0;
    std::string sample;
    std::string checkpoint; // the last one written
    double tokens_per_s = 0;
};

// Runs the configured training, writing logs to `log`. Throws Error on bad input.
TrainSummary train(const TrainConfig& config, const TrainOptions& options, std::ostream& log);

} // namespace octet
