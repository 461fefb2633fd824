// `octet bench train`: training throughput of one model under one or more precision policies, on
// random tokens (as the PyTorch peer script measures), in tokens per second.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/rng.h"
#include "model/presets.h"
#include "train/backend.h"
#include "train/train_step.h"
#ifdef OCTET_WITH_CUDA
#include "cuda/cuda_ops.h"
#endif

namespace octet {

static const char* bench_help =
    R"(usage: octet bench train [--model NAME] [--recipes R1,R2,...] [--batch B]
                         [--steps N] [--device auto|cpu|cuda] [--profile] [--eager]

Training throughput (tokens/s) of a model preset under each precision policy: a few warm-up
steps, then the median of N timed steps, on random tokens. On the GPU it also prints the model
FLOPs utilisation (6·params + attention FLOPs per token, against 989 TFLOPS: the dense BF16 peak
of an H100/H200 SXM), the peak GPU memory Octet allocated, and of it what parameters, gradients
and optimizer states hold before the first step (column "state GiB": the rest is activations,
FP8 operands and scratch). Steps replay a CUDA graph where the recipe allows, as `octet train`
does (column "graph").

  --model NAME    tiny (default), tiny-llama, gpt2-124m, gpt2-350m, gpt2-1.3b
  --recipes LIST  precision policies (default: bf16,te-delayed,blockwise,mxfp8,moss,fp8lm-o2)
  --batch B       sequences per step (default 8)
  --steps N       timed steps (default 10)
  --device D      auto (default: the GPU if present), cpu or cuda
  --profile       on the GPU, also print the time of each op per step (steps run eagerly)
  --eager         no CUDA graphs: every op launched from the host
)";

#ifdef OCTET_WITH_CUDA
static void set_profiling(Ops<float>& ops, bool on) {
    dynamic_cast<cuda::CudaOps&>(ops).profiler().enable(on);
}

// GPU time per op per step, largest first; the rest of the step is host time and launch gaps.
static void print_profile(Ops<float>& ops, int64_t steps, double step_s, std::ostream& out) {
    auto& profiler = dynamic_cast<cuda::CudaOps&>(ops).profiler();
    profiler.enable(false);
    char line[160];
    double total = 0;
    for (const auto& e : profiler.report()) {
        const double ms = e.ms / double(steps);
        const bool part = e.name.find('.') != std::string::npos; // inside an op's time
        if (!part) total += ms;
        std::snprintf(line, sizeof line, "    %-22s %5lld calls %9.2f ms %6.1f%%\n",
                      ((part ? "  " : "") + e.name).c_str(),
                      static_cast<long long>(e.calls / steps), ms, 100 * ms / (step_s * 1e3));
        out << line;
    }
    std::snprintf(line, sizeof line, "    %-22s %15.2f ms %6.1f%%\n", "(all ops)", total,
                  100 * total / (step_s * 1e3));
    out << line;
}
#else
static void set_profiling(Ops<float>&, bool) {}
static void print_profile(Ops<float>&, int64_t, double, std::ostream&) {}
#endif

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
                    {"model", "recipes", "batch", "steps", "device"}, {"help", "profile", "eager"});
    if (args.has("help")) {
        out << bench_help;
        return 0;
    }
    const std::string device = args.get("device").value_or("auto");
    const ModelConfig config = model_preset(args.get("model").value_or("tiny"));
    const int64_t batch = args.get_int("batch", 8, 1, 1 << 16);
    const int64_t steps = args.get_int("steps", 10, 1, 1 << 20);
    const std::vector<std::string> policies = split_recipe_list(
        args.get("recipes").value_or("bf16,te-delayed,blockwise,mxfp8,moss,fp8lm-o2"));
    for (const std::string& p : policies) make_policy(p); // fail early: a bad recipe or device
    make_backend(device);

    const int64_t seq = config.seq_len, n = batch * seq;
    Rng rng(1);
    std::vector<int32_t> tokens(size_t(n + 1));
    for (int32_t& t : tokens) t = int32_t(rng.next_u64() % uint64_t(config.vocab_size));
    char line[256];
    std::snprintf(line, sizeof line, "model %s (%lld parameters), batch %lld x %lld tokens\n",
                  config.describe().c_str(), static_cast<long long>(config.parameter_count()),
                  static_cast<long long>(batch), static_cast<long long>(seq));
    out << line;
    std::snprintf(line, sizeof line, "%-14s %6s %6s %10s %12s %7s %10s %10s %10s\n", "recipe",
                  "device", "graph", "step ms", "tokens/s", "MFU %", "peak GiB", "state GiB",
                  "opt B/par");
    out << line << std::string(93, '-') << "\n";
    // Training FLOPs per token: 6 per parameter (forward 2, backward 4) plus the attention
    // scores and weighted sums, 12 · L · C · T (llm.c's and PaLM's accounting).
    const double flops_per_token = 6.0 * double(config.parameter_count()) +
                                   12.0 * double(config.n_layer * config.d_model * seq);
    for (const std::string& name : policies) {
        const PrecisionPolicy policy = make_policy(name);
        Backend backend = make_backend(device);
        Ops<float>& ops = *backend.ops;
        Gpt<float> model(config, ops, policy, 1);
        AdamW optimizer(ops, model.params().tensors(), model.params().values(), policy,
                        AdamWConfig{});
        const bool profile = args.has("profile");
        TrainStep train_step(model, optimizer, ops, policy, !args.has("eager") && !profile);
        const size_t state_bytes = ops.memory().held_bytes();
        std::vector<double> times;
        const bool gpu = backend.device == "cuda";
        for (int64_t s = 0; s < steps + 2; ++s) {
            if (s == 2 && gpu && profile) set_profiling(ops, true);
            const auto t0 = std::chrono::steady_clock::now();
            train_step.run({{tokens.data(), tokens.data() + 1}}, batch, seq, 1e-4);
            const double dt =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (s >= 2) times.push_back(dt); // two warm-up steps
        }
        std::sort(times.begin(), times.end());
        const double median = times[times.size() / 2];
        const double tokens_per_s = double(n) / median;
        char mfu[16] = "-", peak[16] = "-", state[16] = "-";
        if (gpu) {
            constexpr double gib = double(1ull << 30);
            std::snprintf(mfu, sizeof mfu, "%.1f", 100 * tokens_per_s * flops_per_token / 989e12);
            std::snprintf(peak, sizeof peak, "%.2f", double(ops.memory().peak_bytes()) / gib);
            std::snprintf(state, sizeof state, "%.2f", double(state_bytes) / gib);
        }
        std::snprintf(line, sizeof line, "%-14s %6s %6s %10.1f %12.0f %7s %10s %10s %10.1f\n",
                      name.c_str(), backend.device.c_str(), train_step.graphs() ? "yes" : "-",
                      median * 1e3, tokens_per_s, mfu, peak, state,
                      optimizer.bytes_per_parameter());
        out << line << std::flush;
        if (gpu && profile) print_profile(ops, steps, median, out);
    }
    return 0;
}

} // namespace octet
