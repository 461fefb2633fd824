// Checkpoint files (see checkpoint.h).
#include "train/checkpoint.h"

#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "io/safetensors.h"

namespace octet {

constexpr const char* checkpoint_format = "octet-checkpoint-1";

void save_checkpoint(const std::string& path, const TrainConfig& config, Gpt<float>& model,
                     const AdamW& optimizer, const CheckpointState& state,
                     const std::string& tokenizer_text) {
    SafeTensorsFile f;
    ParameterSet<float>& p = model.params();
    const std::vector<float> values = p.download_values();
    for (const ParamTensor& t : p.tensors())
        f.tensors["model." + t.name] = safetensor_f32(t.shape, values.data() + t.offset);
    const AdamW::Moments moments = optimizer.export_state();
    f.tensors["optim.m"] = safetensor_f32({int64_t(moments.m.size())}, moments.m.data());
    f.tensors["optim.v"] = safetensor_f32({int64_t(moments.v.size())}, moments.v.data());
    f.tensors["recipe_state"] = safetensor_f64(model.recipe_state());
    f.metadata["format"] = checkpoint_format;
    f.metadata["step"] = std::to_string(state.step);
    f.metadata["optimizer_step"] = std::to_string(moments.step);
    f.metadata["data_cursor"] = std::to_string(state.data_cursor);
    f.metadata["sample_rng"] = std::to_string(state.sample_rng);
    f.metadata["vocab_size"] = std::to_string(model.config().vocab_size);
    f.metadata["config"] = config.to_toml();
    f.metadata["tokenizer"] = tokenizer_text;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path().empty()
                                            ? std::filesystem::path(".")
                                            : std::filesystem::path(path).parent_path());
    write_safetensors(path, f);
}

static const std::string& metadata_text(const SafeTensorsFile& f, const std::string& key,
                                        const std::string& path) {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end()) throw Error(path + ": checkpoint metadata lacks '" + key + "'");
    return it->second;
}

static int64_t metadata_int(const SafeTensorsFile& f, const std::string& key,
                            const std::string& path) {
    const std::string& text = metadata_text(f, key, path);
    try {
        size_t used = 0;
        const long long v = std::stoll(text, &used);
        if (used != text.size()) throw std::invalid_argument(key);
        return v;
    } catch (const std::exception&) {
        throw Error(path + ": checkpoint metadata '" + key + "' is not an integer");
    }
}

LoadedCheckpoint read_checkpoint_header(const std::string& path) {
    const SafeTensorsFile f = read_safetensors(path);
    auto format = f.metadata.find("format");
    if (format == f.metadata.end() || format->second != checkpoint_format)
        throw Error(path + ": not an Octet checkpoint (metadata 'format' is not " +
                    checkpoint_format + ")");
    LoadedCheckpoint c;
    c.path = path;
    // The configuration travels as TOML text: parse it with the same validated loader.
    try {
        c.config = parse_train_config(metadata_text(f, "config", path), path + ":config");
    } catch (const Error& e) {
        throw Error(path + ": checkpoint configuration: " + e.what());
    }
    c.vocab_size = metadata_int(f, "vocab_size", path);
    c.state.step = metadata_int(f, "step", path);
    c.state.data_cursor = metadata_int(f, "data_cursor", path);
    const std::string rng = metadata_text(f, "sample_rng", path);
    if (rng.empty() || rng.find_first_not_of("0123456789") != std::string::npos)
        throw Error(path + ": checkpoint metadata 'sample_rng' is not an unsigned integer");
    c.state.sample_rng = uint64_t(std::stoull(rng));
    auto tok = f.metadata.find("tokenizer");
    if (tok != f.metadata.end()) c.tokenizer_text = tok->second;
    return c;
}

void load_checkpoint_tensors(const std::string& path, Gpt<float>& model, AdamW* optimizer) {
    const SafeTensorsFile f = read_safetensors(path);
    ParameterSet<float>& p = model.params();
    std::vector<float> values(size_t(p.size()));
    for (const ParamTensor& t : p.tensors()) {
        auto it = f.tensors.find("model." + t.name);
        if (it == f.tensors.end())
            throw Error(path + ": checkpoint lacks tensor 'model." + t.name + "'");
        if (it->second.shape != t.shape)
            throw Error(path + ": tensor 'model." + t.name + "' has the wrong shape");
        const std::vector<float> v = safetensor_to_f32(it->second, t.name);
        std::copy(v.begin(), v.end(), values.begin() + t.offset);
    }
    p.upload_values(values);
    auto state = f.tensors.find("recipe_state");
    if (state == f.tensors.end()) throw Error(path + ": checkpoint lacks 'recipe_state'");
    model.set_recipe_state(safetensor_to_f64(state->second, "recipe_state"));
    if (!optimizer) return;
    AdamW::Moments m;
    for (const char* name : {"optim.m", "optim.v"})
        if (!f.tensors.count(name)) throw Error(path + ": checkpoint lacks '" + name + "'");
    m.m = safetensor_to_f32(f.tensors.at("optim.m"), "optim.m");
    m.v = safetensor_to_f32(f.tensors.at("optim.v"), "optim.v");
    m.step = metadata_int(f, "optimizer_step", path);
    optimizer->import_state(m, p.values());
}

} // namespace octet
