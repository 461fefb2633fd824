// Model configuration defaults and validation.
#include "model/config.h"

#include "common/error.h"

namespace octet {

const char* flavor_name(Flavor f) {
    return f == Flavor::gpt2 ? "gpt2" : "llama";
}

int64_t ModelConfig::ffn_size() const {
    if (d_ff > 0) return d_ff;
    if (flavor == Flavor::gpt2) return 4 * d_model;
    return (8 * d_model / 3 + 31) / 32 * 32;
}

int64_t ModelConfig::parameter_count() const {
    const int64_t c = d_model, f = ffn_size();
    if (flavor == Flavor::gpt2) // tied head; biases and LayerNorm shifts
        return vocab_size * c + seq_len * c +
               n_layer * (2 * c + 3 * c * c + 3 * c + c * c + c + 2 * c + c * f + f + f * c + c) +
               2 * c;
    return 2 * vocab_size * c + n_layer * (c + 3 * c * c + c * c + c + 2 * f * c + f * c) + c;
}

void ModelConfig::validate() const {
    auto positive = [](int64_t v, const char* key) {
        if (v <= 0)
            throw Error(std::string("model.") + key + " must be positive (got " +
                        std::to_string(v) + ")");
    };
    positive(n_layer, "n_layer");
    positive(n_head, "n_head");
    positive(d_model, "d_model");
    positive(vocab_size, "vocab_size");
    positive(seq_len, "seq_len");
    if (d_ff < 0) throw Error("model.d_ff must be positive, or 0 for the default");
    if (d_model % n_head != 0)
        throw Error("model.d_model (" + std::to_string(d_model) +
                    ") must be a multiple of model.n_head (" + std::to_string(n_head) + ")");
    if (flavor == Flavor::llama && head_size() % 2 != 0)
        throw Error("model.d_model / model.n_head must be even for rotary embeddings");
    if (vocab_size > (int64_t(1) << 31) - 1)
        throw Error("model.vocab_size does not fit int32 tokens");
    if (!(norm_eps > 0)) throw Error("model.norm_eps must be positive");
    if (!(rope_base > 1)) throw Error("model.rope_base must be greater than 1");
}

std::string ModelConfig::describe() const {
    return std::string(flavor_name(flavor)) + " L" + std::to_string(n_layer) + " d" +
           std::to_string(d_model) + " h" + std::to_string(n_head) + " ff" +
           std::to_string(ffn_size()) + " V" + std::to_string(vocab_size) + " T" +
           std::to_string(seq_len);
}

} // namespace octet
