// `octet export`: a Hugging Face GPT-2 folder (config.json + model.safetensors in BF16) from a
// checkpoint of the GPT-2 flavour. HF's GPT-2 stores its linear weights as Conv1D, [in, out]:
// ours are [out, in], so they are transposed; qkv is already packed q | k | v as c_attn expects.
#include <filesystem>
#include <ostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "cpu/cpu_ops.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

namespace octet {

static const char* export_help = R"(usage: octet export --checkpoint FILE --out DIR

Write a Hugging Face GPT-2 folder: DIR/config.json and DIR/model.safetensors (BF16), loadable
with transformers' GPT2LMHeadModel.from_pretrained(DIR). GPT-2 flavour only.
)";

int cmd_export(const std::vector<std::string>& argv, std::ostream& out) {
    const Args args(argv, {"checkpoint", "out"}, {"help"});
    if (args.has("help")) {
        out << export_help;
        return 0;
    }
    const LoadedCheckpoint ck = read_checkpoint_header(args.require("checkpoint"));
    if (ck.config.model.flavor != Flavor::gpt2)
        throw Error("export: only the gpt2 flavour maps onto Hugging Face's GPT-2 (this checkpoint "
                    "is llama)");
    ModelConfig mc = ck.config.model;
    mc.vocab_size = ck.vocab_size;
    CpuOps<float> ops;
    Gpt<float> model(mc, ops, make_policy(ck.config.recipe), 1); // so its recipe state loads
    load_checkpoint_tensors(ck.path, model, nullptr);

    SafeTensorsFile f;
    f.metadata["format"] = "pt";
    const std::vector<float> values = model.params().download_values();
    for (const ParamTensor& t : model.params().tensors()) {
        const float* v = values.data() + t.offset;
        std::string name = t.name;
        const bool conv1d = name.ends_with("attn.qkv.weight") ||
                            name.ends_with("attn.proj.weight") || name.ends_with("mlp.fc.weight") ||
                            name.ends_with("mlp.proj.weight");
        for (auto [ours, theirs] : {std::pair{"attn.qkv.", "attn.c_attn."},
                                    {"attn.proj.", "attn.c_proj."},
                                    {"mlp.fc.", "mlp.c_fc."},
                                    {"mlp.proj.", "mlp.c_proj."}}) {
            const size_t at = name.find(ours);
            if (at != std::string::npos) name.replace(at, std::string(ours).size(), theirs);
        }
        if (name == "wte" || name == "wpe") name += ".weight";
        if (conv1d) {
            const int64_t rows = t.shape[0], cols = t.shape[1];
            std::vector<float> tr(size_t(rows * cols));
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < cols; ++c) tr[size_t(c * rows + r)] = v[r * cols + c];
            f.tensors[name] = safetensor_bf16({cols, rows}, tr.data());
        } else {
            f.tensors[name] = safetensor_bf16(t.shape, v);
        }
    }
    const std::string dir = args.require("out");
    std::filesystem::create_directories(dir);
    write_safetensors(dir + "/model.safetensors", f);
    const std::string config =
        "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n"
        "  \"vocab_size\": " +
        std::to_string(mc.vocab_size) + ",\n  \"n_positions\": " + std::to_string(mc.seq_len) +
        ",\n  \"n_embd\": " + std::to_string(mc.d_model) +
        ",\n  \"n_layer\": " + std::to_string(mc.n_layer) +
        ",\n  \"n_head\": " + std::to_string(mc.n_head) +
        ",\n  \"n_inner\": " + std::to_string(mc.ffn_size()) +
        ",\n  \"activation_function\": \"gelu_new\",\n  \"layer_norm_epsilon\": " +
        std::to_string(mc.norm_eps) +
        ",\n  \"tie_word_embeddings\": true,\n"
        "  \"torch_dtype\": \"bfloat16\"\n}\n";
    write_file_atomic(dir + "/config.json", std::vector<uint8_t>(config.begin(), config.end()));
    out << "wrote " << dir << "/config.json and " << dir << "/model.safetensors ("
        << model.params().size() << " parameters, BF16)\n";
    return 0;
}

} // namespace octet
