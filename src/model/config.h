// Model configuration: GPT-2 (LayerNorm, GELU, learned positions, tied embeddings, biases) or
// Llama-style (RMSNorm, SwiGLU, RoPE, untied head, no biases).
#pragma once

#include <cstdint>
#include <string>

namespace octet {

enum class Flavor { gpt2, llama };

struct ModelConfig {
    Flavor flavor = Flavor::gpt2;
    int64_t n_layer = 2;
    int64_t n_head = 4;
    int64_t d_model = 64;
    int64_t d_ff = 0; // 0: 4·d_model (gpt2), or 8/3·d_model rounded up to a multiple of 32 (llama)
    int64_t vocab_size = 256;
    int64_t seq_len = 64;
    double norm_eps = 1e-5;
    double rope_base = 10000.0;

    int64_t head_size() const { return d_model / n_head; }
    int64_t ffn_size() const;
    // Parameters of the model this configures (what Gpt registers).
    int64_t parameter_count() const;
    // Throws Error naming the first impossible value.
    void validate() const;
    std::string describe() const;
};

const char* flavor_name(Flavor f);

} // namespace octet
