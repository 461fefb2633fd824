// `octet train`, `octet sample` and `octet compare`: training runs, text generation from a
// checkpoint, and the same run under several recipes side by side.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <ostream>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "io/tokenizer.h"
#include "train/backend.h"
#include "train/checkpoint.h"
#include "train/sampler.h"
#include "train/trainer.h"

namespace octet {

static const char* train_help =
    R"(usage: octet train [--config FILE] [--set section.key=value ...] [--recipe R]
                   [--device auto|cpu|cuda] [--steps N] [--resume CHECKPOINT]

Train a GPT model. With no arguments: the built-in tiny config (configs/tiny.toml) on the
default dataset (data/kjv, made by scripts/setup.sh) with the moss recipe.

  --config FILE   a TOML config (configs/*.toml); every key is checked
  --set K=V       override one key, e.g. --set train.lr=1e-3 --set model.n_layer=6
  --recipe R      shorthand for --set train.recipe=R (bf16, moss, blockwise, fp8lm-o2, ...)
  --device D      shorthand for --set train.device=D
  --steps N       shorthand for --set train.steps=N
  --resume CKPT   continue a run from its checkpoint, bit for bit
  --metrics FILE  JSON Lines metrics (default <output.dir>/metrics.jsonl)

Writes <output.dir>/metrics.jsonl and <output.dir>/checkpoint.safetensors.
)";

static TrainConfig config_from_args(const Args& args) {
    TrainConfig config =
        args.get("config") ? load_train_config(*args.get("config")) : default_train_config();
    for (const std::string& s : args.all("set")) apply_override(config, s);
    if (auto r = args.get("recipe")) apply_override(config, "train.recipe=" + *r);
    if (auto d = args.get("device")) apply_override(config, "train.device=" + *d);
    if (auto n = args.get("steps")) apply_override(config, "train.steps=" + *n);
    return config;
}

int cmd_train(const std::vector<std::string>& argv, std::ostream& out) {
    const Args args(argv, {"config", "set", "recipe", "device", "steps", "resume", "metrics"},
                    {"help"});
    if (args.has("help")) {
        out << train_help;
        return 0;
    }
    TrainOptions options;
    options.resume = args.get("resume").value_or("");
    options.metrics_path = args.get("metrics").value_or("");
    options.progress_line = &out == &std::cout && ::isatty(STDOUT_FILENO);
    train(config_from_args(args), options, out);
    return 0;
}

static const char* sample_help =
    R"(usage: octet sample --checkpoint FILE [--prompt TEXT] [--tokens N]
                    [--temperature T] [--top-k K] [--seed S] [--device auto|cpu|cuda]

Generate text from a trained checkpoint (its tokenizer travels inside it), on the GPU when
there is one and the CUDA backend runs the checkpoint's recipe (--device auto, the default).
)";

int cmd_sample(const std::vector<std::string>& argv, std::ostream& out) {
    const Args args(argv,
                    {"checkpoint", "prompt", "tokens", "temperature", "top-k", "seed", "device"},
                    {"help"});
    if (args.has("help")) {
        out << sample_help;
        return 0;
    }
    const LoadedCheckpoint ck = read_checkpoint_header(args.require("checkpoint"));
    if (ck.tokenizer_text.empty())
        throw Error(ck.path + ": the run had no tokenizer; cannot turn tokens into text");
    const Tokenizer tokenizer = Tokenizer::parse(ck.tokenizer_text, ck.path + ":tokenizer");
    ModelConfig mc = ck.config.model;
    mc.vocab_size = ck.vocab_size;
    const PrecisionPolicy policy = make_policy(ck.config.recipe);
    Backend backend = make_backend(args.get("device").value_or("auto"));
    Gpt<float> model(mc, *backend.ops, policy, 1);
    load_checkpoint_tensors(ck.path, model, nullptr);
    std::vector<int32_t> tokens =
        tokenizer.encode(args.get("prompt").value_or(ck.config.sample_prompt));
    if (tokens.empty()) tokens.push_back('\n');
    Rng rng(uint64_t(args.get_int("seed", 1, 0, INT64_MAX)));
    char* end = nullptr;
    const std::string temp = args.get("temperature").value_or("0.8");
    const double temperature = std::strtod(temp.c_str(), &end);
    if (end != temp.c_str() + temp.size() || !(temperature > 0))
        throw Error("--temperature=" + temp + " is invalid (expected a positive number)");
    sample_tokens(model, tokens, args.get_int("tokens", 200, 1, 1 << 20), temperature,
                  args.get_int("top-k", 40, 1, 1 << 20), rng);
    out << tokenizer.decode(tokens) << "\n";
    return 0;
}

static const char* compare_help =
    R"(usage: octet compare --recipes R1,R2,... [--config FILE] [--set K=V ...] [--out DIR]

Train the same config with the same seed and data under each recipe; write DIR/<recipe>.jsonl,
DIR/curves.png (loss curves and the relative gap to the first recipe) and a table of final
losses and gaps. DIR defaults to runs/compare.
)";

int cmd_compare(const std::vector<std::string>& argv, std::ostream& out) {
    const Args args(argv, {"recipes", "config", "set", "out", "steps"}, {"help"});
    if (args.has("help")) {
        out << compare_help;
        return 0;
    }
    const std::vector<std::string> recipes = split_recipe_list(args.require("recipes"));
    const std::string dir = args.get("out").value_or("runs/compare");
    TrainConfig base = config_from_args(args);
    for (const std::string& r : recipes) {
        TrainConfig c = base;
        apply_override(c, "train.recipe=" + r);
        validate(c); // every recipe is checked before the first one trains
    }
    std::vector<std::string> files;
    std::vector<TrainSummary> results;
    for (const std::string& r : recipes) {
        TrainConfig c = base;
        apply_override(c, "train.recipe=" + r);
        c.out_dir = dir + "/" + r;
        TrainOptions options;
        options.metrics_path = dir + "/" + r + ".jsonl";
        std::filesystem::create_directories(dir);
        out << "== " << r << "\n";
        results.push_back(train(c, options, out));
        files.push_back(options.metrics_path);
    }
    std::vector<std::string> plot_args = files;
    plot_args.push_back("-o");
    plot_args.push_back(dir + "/curves.png");
    cmd_plot(plot_args, out);
    out << "\n"
        << "recipe        final train loss   val loss   gap vs " << recipes[0] << "\n";
    for (size_t i = 0; i < recipes.size(); ++i) {
        char line[160];
        std::snprintf(line, sizeof line, "%-12s %16.4f %10.4f %+10.3f%%\n", recipes[i].c_str(),
                      results[i].train_loss, results[i].val_loss,
                      100 * (results[i].val_loss - results[0].val_loss) / results[0].val_loss);
        out << line;
    }
    return 0;
}

} // namespace octet
