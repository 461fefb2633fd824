// `octet bench train`: training throughput of one model under one or more precision policies, on
// random tokens (as the PyTorch peer script measures), in tokens per second.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ostream>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/rng.h"
#include "cpu/cpu_ops.h"
#include "model/presets.h"
#include "train/train_step.h"

namespace octet {

static const char* bench_help =
    R"(usage: octet bench train [--model NAME] [--recipes R1,R2,...] [--batch B]
                         [--steps N] [--device cpu]

Training throughput (tokens/s) of a model preset under each precision policy: a few warm-up
steps, then the median of N timed steps, on random tokens.

  --model NAME    tiny (default), tiny-llama, gpt2-124m, gpt2-350m, gpt2-1.3b
  --recipes LIST  precision policies (default: bf16,te-delayed,blockwise,mxfp8,moss,fp8lm-o2)
  --batch B       sequences per step (default 8)
  --steps N       timed steps (default 10)
  --device cpu    the only device until the CUDA backend lands
)";

int cmd_bench(const std::vector<std::string>& argv, std::ostream& out) {
    if (!argv.empty() && argv[0] == "gemm")
        return cmd_bench_gemm({argv.begin() + 1, argv.end()}, out);
    if (!argv.empty() && argv[0] == "quant")
        return cmd_bench_quant({argv.begin() + 1, argv.end()}, out);
    if (argv.empty() || argv[0] != "train") {
        if (!argv.empty() && (argv[0] == "--help" || argv[0] == "-h")) {
            out << bench_help;
            return 0;
        }
        throw Error("expected 'octet bench train', 'octet bench gemm' or 'octet bench quant'");
    }
    const Args args(std::vector<std::string>(argv.begin() + 1, argv.end()),
                    {"model", "recipes", "batch", "steps", "device"}, {"help"});
    if (args.has("help")) {
        out << bench_help;
        return 0;
    }
    if (args.get("device").value_or("cpu") != "cpu")
        throw Error("--device " + *args.get("device") + " is not available yet: only cpu");
    const ModelConfig config = model_preset(args.get("model").value_or("tiny"));
    const int64_t batch = args.get_int("batch", 8, 1, 1 << 16);
    const int64_t steps = args.get_int("steps", 10, 1, 1 << 20);
    const std::vector<std::string> policies = split_recipe_list(
        args.get("recipes").value_or("bf16,te-delayed,blockwise,mxfp8,moss,fp8lm-o2"));
    for (const std::string& p : policies) make_policy(p); // fail before any work

    const int64_t seq = config.seq_len, n = batch * seq;
    Rng rng(1);
    std::vector<int32_t> tokens(size_t(n + 1));
    for (int32_t& t : tokens) t = int32_t(rng.next_u64() % uint64_t(config.vocab_size));
    char line[256];
    std::snprintf(line, sizeof line, "model %s, batch %lld x %lld tokens, %u CPU threads\n",
                  config.describe().c_str(), static_cast<long long>(batch),
                  static_cast<long long>(seq), std::thread::hardware_concurrency());
    out << line;
    std::snprintf(line, sizeof line, "%-14s %12s %12s %14s\n", "recipe", "step ms", "tokens/s",
                  "opt bytes/param");
    out << line << std::string(56, '-') << "\n";
    for (const std::string& name : policies) {
        const PrecisionPolicy policy = make_policy(name);
        CpuOps<float> ops;
        Gpt<float> model(config, ops, policy, 1);
        AdamW optimizer(ops, model.params().tensors(), model.params().values(), policy, AdamWConfig{});
        std::vector<double> times;
        for (int64_t s = 0; s < steps + 2; ++s) {
            const auto t0 = std::chrono::steady_clock::now();
            train_step(model, optimizer, tokens.data(), tokens.data() + 1, batch, seq, 1e-4);
            const double dt =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (s >= 2) times.push_back(dt); // two warm-up steps
        }
        std::sort(times.begin(), times.end());
        const double median = times[times.size() / 2];
        std::snprintf(line, sizeof line, "%-14s %12.1f %12.0f %14.1f\n", name.c_str(), median * 1e3,
                      double(n) / median, optimizer.bytes_per_parameter());
        out << line << std::flush;
    }
    return 0;
}

} // namespace octet
