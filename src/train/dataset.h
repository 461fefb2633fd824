// A prepared dataset: train and validation token shards (llm.c format) and, when present, the
// tokenizer that made them. Batches are consecutive (B, T) windows read from a cursor that wraps
// at the end; the cursor is the position in the data that checkpoints save.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace octet {

struct Dataset {
    std::vector<int32_t> train, val;
    std::unique_ptr<Tokenizer> tokenizer; // nullptr for shards brought without one
    int64_t vocab_size = 0;

    // Reads dir/train.bin, dir/val.bin and dir/tokenizer.bpe (optional); throws Error naming the
    // missing or malformed file and how to make it.
    static Dataset load(const std::string& dir);
};

// Fills x and y (targets: x shifted by one) with B consecutive windows of T tokens starting at
// `cursor`, and returns the cursor after them; restarts from 0 where the data runs out.
int64_t next_batch(const std::vector<int32_t>& tokens, int64_t cursor, int64_t batch, int64_t seq,
                   std::vector<int32_t>& x, std::vector<int32_t>& y);

// Prepares a dataset from raw text: trains the tokenizer on the training part, writes
// train.bin, val.bin (the last `val_fraction` of the lines) and tokenizer.bpe into dir.
void prepare_text_dataset(const std::string& text_path, const std::string& dir, int64_t vocab_size,
                          double val_fraction);

} // namespace octet
