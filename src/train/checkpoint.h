// Checkpoints: one safetensors file holding everything a run needs to continue bit for bit —
// weights (model.<name>), Adam moments (optim.m, optim.v), the recipe's per-tensor state
// (recipe_state: delayed amax histories, MOSS predicted bounds) — and, as metadata, the step, the
// data cursor, the sampling RNG, the full configuration and the tokenizer. Written atomically.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/gpt.h"
#include "optim/adamw.h"
#include "train/train_config.h"

namespace octet {

struct CheckpointState {
    int64_t step = 0;        // optimizer steps taken
    int64_t data_cursor = 0; // position in the training tokens
    uint64_t sample_rng = 0;
};

void save_checkpoint(const std::string& path, const TrainConfig& config, Gpt<float>& model,
                     const AdamW& optimizer, const CheckpointState& state,
                     const std::string& tokenizer_text);

// What a checkpoint holds, read and checked (throws Error naming the problem).
struct LoadedCheckpoint {
    TrainConfig config;
    int64_t vocab_size = 0;
    CheckpointState state;
    std::string tokenizer_text; // empty when the run had no tokenizer
    std::string path;
};
LoadedCheckpoint read_checkpoint_header(const std::string& path);
// Loads weights, optimizer and recipe state into a model built from the checkpoint's config.
void load_checkpoint_tensors(const std::string& path, Gpt<float>& model, AdamW* optimizer);

} // namespace octet
