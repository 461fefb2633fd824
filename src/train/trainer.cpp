// The training loop (see trainer.h).
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "train/backend.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/sampler.h"
#include "train/train_step.h"

namespace octet {

namespace {

std::string format_duration(double seconds) {
    const int64_t s = int64_t(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
    return buf;
}

double evaluate(Gpt<float>& model, const Dataset& data, const TrainConfig& c) {
    std::vector<int32_t> x, y;
    int64_t cursor = 0;
    double sum = 0;
    for (int64_t b = 0; b < c.eval_batches; ++b) {
        cursor = next_batch(data.val, cursor, c.batch_size, c.model.seq_len, x, y);
        sum += model.forward(x.data(), y.data(), c.batch_size, c.model.seq_len);
    }
    return sum / double(c.eval_batches);
}

std::string generate(Gpt<float>& model, const Dataset& data, const TrainConfig& c, Rng& rng) {
    if (!data.tokenizer) return "(no tokenizer: samples need a dataset prepared by octet)";
    std::vector<int32_t> tokens = data.tokenizer->encode(c.sample_prompt);
    if (tokens.empty()) tokens.push_back('\n');
    sample_tokens(model, tokens, c.sample_tokens, c.temperature, c.top_k, rng);
    return data.tokenizer->decode(tokens);
}

std::string tokenizer_text(const std::string& dir) {
    const std::string path = dir + "/tokenizer.bpe";
    if (!std::filesystem::exists(path)) return "";
    const std::vector<uint8_t> b = read_file(path);
    return std::string(b.begin(), b.end());
}

} // namespace

TrainSummary train(const TrainConfig& config_in, const TrainOptions& options, std::ostream& log) {
    TrainConfig c = config_in;
    CheckpointState state;
    if (!options.resume.empty()) {
        const LoadedCheckpoint ck = read_checkpoint_header(options.resume);
        // The model and recipe come from the checkpoint; the schedule from the config given.
        c.model = ck.config.model;
        c.recipe = ck.config.recipe;
        state = ck.state;
    }
    validate(c);
    const PrecisionPolicy policy = make_policy(c.recipe);
    Backend backend = make_backend(c.device);
    Ops<float>& ops = *backend.ops;
    const Dataset data = Dataset::load(c.data_dir);
    c.model.vocab_size = data.vocab_size;
    Gpt<float> model(c.model, ops, policy, uint64_t(c.seed));
    AdamWConfig opt_config;
    opt_config.beta1 = c.beta1;
    opt_config.beta2 = c.beta2;
    opt_config.weight_decay = c.weight_decay;
    opt_config.grad_clip = c.grad_clip;
    AdamW optimizer(ops, model.params().tensors(), model.params().values(), policy, opt_config);
    Rng sample_rng(uint64_t(c.seed) ^ 0x5EED5EEDull);
    if (!options.resume.empty()) {
        load_checkpoint_tensors(options.resume, model, &optimizer);
        sample_rng = Rng(state.sample_rng);
    }
    const std::string tok_text = tokenizer_text(c.data_dir);

    std::filesystem::create_directories(c.out_dir);
    const std::string metrics_path =
        options.metrics_path.empty() ? c.out_dir + "/metrics.jsonl" : options.metrics_path;
    std::ofstream metrics(metrics_path, options.resume.empty() ? std::ios::trunc : std::ios::app);
    if (!metrics) throw Error("cannot write metrics to '" + metrics_path + "'");
    const int64_t accum = c.accumulation_steps();
    const int64_t tokens_per_step = accum * c.batch_size * c.model.seq_len;
    if (options.resume.empty())
        metrics << "{\"type\":\"header\",\"version\":\"" << OCTET_TRAIN_VERSION
                << "\",\"recipe\":" << json_escape(c.recipe) << ",\"device\":\"" << backend.device
                << "\",\"model\":" << json_escape(c.model.describe())
                << ",\"params\":" << model.params().size()
                << ",\"tokens_per_step\":" << tokens_per_step
                << ",\"config\":" << json_escape(c.to_toml()) << "}\n";
    TrainStep train_step(model, optimizer, ops, policy, c.cuda_graphs);
    log << "octet train: " << c.model.describe() << " (" << model.params().size()
        << " parameters), recipe " << policy.describe() << ", device " << backend.device << "\n"
        << "  data " << c.data_dir << ": " << data.train.size() << " train / " << data.val.size()
        << " validation tokens, vocabulary " << data.vocab_size << "; " << tokens_per_step
        << " tokens per step (" << accum << " x " << c.batch_size << " x " << c.model.seq_len
        << "), " << c.steps << " steps\n";
    if (backend.device == "cuda")
        log << "  CUDA graphs: "
            << (train_step.graphs() ? "each step recorded once and replayed"
                                    : "off (" + train_step.why_eager() + ")")
            << "\n";
    if (state.step > 0)
        log << "  resumed from " << options.resume << " at step " << state.step << "\n";
    log << std::flush;

    TrainSummary summary;
    std::vector<std::vector<int32_t>> micro_x(static_cast<size_t>(accum)),
        micro_y(static_cast<size_t>(accum));
    std::vector<MicroBatch> micro(static_cast<size_t>(accum));
    const auto start = std::chrono::steady_clock::now();
    double last_eval = NAN;
    for (int64_t step = state.step; step < c.steps; ++step) {
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = c.lr_at(step);
        for (size_t i = 0; i < micro.size(); ++i) {
            state.data_cursor = next_batch(data.train, state.data_cursor, c.batch_size,
                                           c.model.seq_len, micro_x[i], micro_y[i]);
            micro[i] = {micro_x[i].data(), micro_y[i].data()};
        }
        const StepResult result = train_step.run(micro, c.batch_size, c.model.seq_len, lr);
        const double loss = result.loss, grad_norm = result.grad_norm;
        state.step = step + 1;
        if (!std::isfinite(loss))
            throw Error("training diverged at step " + std::to_string(step + 1) + " (loss " +
                        std::to_string(loss) + ")");
        const double dt =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double tps = double(tokens_per_step) / dt;
        summary.losses.push_back(float(loss));

        const bool eval_now =
            (c.eval_every > 0 && state.step % c.eval_every == 0) || state.step == c.steps;
        if (eval_now) last_eval = evaluate(model, data, c);
        metrics << "{\"step\":" << state.step << ",\"loss\":" << loss << ",\"lr\":" << lr
                << ",\"grad_norm\":" << grad_norm << ",\"tokens_per_s\":" << tps;
        if (eval_now) metrics << ",\"eval_loss\":" << last_eval;
        metrics << "}\n" << std::flush;

        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double eta = elapsed / double(summary.losses.size()) * double(c.steps - state.step);
        char eval_text[16] = "  -   ", line[200];
        if (!std::isnan(last_eval)) std::snprintf(eval_text, sizeof eval_text, "%.4f", last_eval);
        std::snprintf(line, sizeof line,
                      "step %5lld/%lld | loss %.4f | eval %s | lr %.2e | %6.0f tok/s | ETA %s",
                      static_cast<long long>(state.step), static_cast<long long>(c.steps), loss,
                      eval_text, lr, tps, format_duration(eta).c_str());
        if (options.progress_line)
            log << "\r" << line << std::flush;
        else if (eval_now || state.step % 10 == 0 || state.step == 1)
            log << line << "\n" << std::flush;

        if (c.sample_every > 0 && state.step % c.sample_every == 0 && state.step != c.steps) {
            if (options.progress_line) log << "\n";
            log << "sample: " << generate(model, data, c, sample_rng) << "\n" << std::flush;
        }
        if (c.checkpoint_every > 0 && state.step % c.checkpoint_every == 0 &&
            state.step != c.steps) {
            char name[64];
            std::snprintf(name, sizeof name, "/ckpt-%06lld.safetensors",
                          static_cast<long long>(state.step));
            summary.checkpoint = c.out_dir + name;
            save_checkpoint(summary.checkpoint, c, model, optimizer, state, tok_text);
        }
    }
    if (options.progress_line) log << "\n";
    const double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    summary.tokens_per_s =
        double(tokens_per_step) * double(summary.losses.size()) / std::max(total, 1e-9);
    summary.checkpoint = c.out_dir + "/checkpoint.safetensors";
    save_checkpoint(summary.checkpoint, c, model, optimizer, state, tok_text);
    const size_t tail = std::max<size_t>(1, summary.losses.size() / 10);
    for (size_t i = summary.losses.size() - std::min(tail, summary.losses.size());
         i < summary.losses.size(); ++i)
        summary.train_loss += summary.losses[i] / double(std::min(tail, summary.losses.size()));
    summary.val_loss = std::isnan(last_eval) ? evaluate(model, data, c) : last_eval;
    summary.sample = generate(model, data, c, sample_rng);
    char done[256];
    std::snprintf(
        done, sizeof done, "done in %s: train loss %.4f, validation loss %.4f, %.0f tokens/s\n",
        format_duration(total).c_str(), summary.train_loss, summary.val_loss, summary.tokens_per_s);
    log << done << "checkpoint: " << summary.checkpoint << "\nmetrics:    " << metrics_path
        << "\nsample:\n"
        << summary.sample << "\n"
        << std::flush;
    return summary;
}

} // namespace octet
