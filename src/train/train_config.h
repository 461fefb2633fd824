// The configuration of a training run: TOML files in configs/, `--set section.key=value`
// overrides, and the built-in default (configs/tiny.toml). Every key is validated: an unknown key,
// a wrong type or an impossible value is an Error naming the key.
//
//   [model]  flavor, n_layer, n_head, d_model, d_ff, seq_len        (vocab from the tokenizer)
//   [data]   dir: a prepared dataset (train.bin, val.bin, tokenizer.bpe)
//   [train]  recipe, device, steps, batch_size, batch_tokens, lr, min_lr_ratio, warmup_steps,
//            weight_decay, beta1, beta2, grad_clip, seed, cuda_graphs
//   [eval]   every, batches
//   [sample] every, tokens, prompt, temperature, top_k
//   [output] dir, checkpoint_every
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace octet {

struct TrainConfig {
    ModelConfig model;
    std::string data_dir = "data/kjv";
    std::string recipe = "moss";
    std::string device = "auto"; // auto: the GPU if one is present, else the CPU
    int64_t steps = 240;
    int64_t batch_size = 8;
    int64_t batch_tokens = 0; // tokens per optimizer step (gradient accumulation); 0 = one batch
    double lr = 3e-3;
    double min_lr_ratio = 0.1;
    int64_t warmup_steps = 24;
    double weight_decay = 0.1;
    double beta1 = 0.9;
    double beta2 = 0.95;
    double grad_clip = 1.0;
    int64_t seed = 1;
    bool cuda_graphs = true; // replay each step's recorded ops on the GPU (train/train_step.h)
    int64_t eval_every = 50;
    int64_t eval_batches = 8;
    int64_t sample_every = 0; // 0: only at the end
    int64_t sample_tokens = 96;
    std::string sample_prompt = "And God said";
    double temperature = 0.8;
    int64_t top_k = 40;
    std::string out_dir = "runs/tiny";
    int64_t checkpoint_every = 0; // 0: only at the end

    int64_t accumulation_steps() const; // micro-batches per optimizer step
    double lr_at(int64_t step) const;   // warm-up, then cosine to min_lr_ratio · lr
    std::string to_toml() const;        // every key, for logs and checkpoints
};

// The built-in default, identical to configs/tiny.toml.
TrainConfig default_train_config();
TrainConfig load_train_config(const std::string& path); // throws Error naming the key
// The same from TOML text; `path` names the source in messages (a checkpoint's config, say).
TrainConfig parse_train_config(const std::string& toml, const std::string& path);
// Applies "section.key=value" (value parsed by the key's type).
void apply_override(TrainConfig& config, const std::string& assignment);
void validate(const TrainConfig& config);

} // namespace octet
