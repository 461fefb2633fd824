// Model presets (see presets.h).
#include "model/presets.h"

#include "common/error.h"
#include "common/strings.h"

namespace octet {

namespace {

ModelConfig make(Flavor flavor, int64_t layers, int64_t d, int64_t heads, int64_t vocab,
                 int64_t seq) {
    ModelConfig c;
    c.flavor = flavor;
    c.n_layer = layers;
    c.d_model = d;
    c.n_head = heads;
    c.vocab_size = vocab;
    c.seq_len = seq;
    return c;
}

struct Preset {
    std::string name;
    ModelConfig config;
};

const std::vector<Preset>& presets() {
    static const std::vector<Preset> all = {
        {"tiny", make(Flavor::gpt2, 4, 128, 4, 1024, 128)}, // configs/tiny.toml
        {"tiny-llama", make(Flavor::llama, 4, 128, 4, 1024, 128)},
        {"gpt2-124m", make(Flavor::gpt2, 12, 768, 12, 50304, 1024)},
        {"gpt2-350m", make(Flavor::gpt2, 24, 1024, 16, 50304, 1024)},
        {"gpt2-1.3b", make(Flavor::gpt2, 24, 2048, 16, 50304, 1024)},
    };
    return all;
}

} // namespace

ModelConfig model_preset(const std::string& name) {
    for (const Preset& p : presets())
        if (p.name == name) return p.config;
    throw Error("unknown model '" + name + "' (known: " + join(model_preset_names()) + ")");
}

const std::vector<std::string>& model_preset_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (const Preset& p : presets()) n.push_back(p.name);
        return n;
    }();
    return names;
}

} // namespace octet
