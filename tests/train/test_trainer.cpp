// The trainer and its commands on a small prepared dataset: metrics lines, checkpoints that
// resume bit for bit (stateful recipes included), corrupt checkpoints refused, configs validated
// key by key, export to Hugging Face's GPT-2 layout, sample, plot and compare.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "cli/commands.h"
#include "common/error.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "tests/harness/temp_dir.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/trainer.h"

namespace octet {
namespace {

namespace fs = std::filesystem;

class TrainerTest : public testing::TempDirTest {
  protected:
    void SetUp() override {
        TempDirTest::SetUp();
        std::string text;
        for (int i = 0; i < 400; ++i)
            text += "And the " + std::string(i % 3 ? "LORD" : "people") + " said unto Moses, go " +
                    std::to_string(i % 7) + " times.\n";
        std::ofstream(path("text.txt")) << text;
        prepare_text_dataset(path("text.txt"), path("data"), 300, 0.1);
    }
    TrainConfig small(const std::string& recipe, int64_t steps) const {
        TrainConfig c = default_train_config();
        for (const char* kv :
             {"model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.seq_len=16",
              "train.batch_size=2", "eval.every=5", "eval.batches=2", "sample.tokens=8"})
            apply_override(c, kv);
        c.data_dir = path("data");
        c.out_dir = path("run-" + recipe);
        c.recipe = recipe;
        c.steps = steps;
        c.warmup_steps = 2;
        return c;
    }
};

TEST_F(TrainerTest, WritesMetricsLinesAndACheckpoint) {
    std::ostringstream log;
    TrainConfig c = small("bf16", 10);
    c.batch_tokens = 64; // two micro-batches of 2 x 16 per step
    const TrainSummary s = train(c, {}, log);
    ASSERT_EQ(s.losses.size(), 10u);
    EXPECT_TRUE(fs::exists(s.checkpoint));
    std::ifstream in(c.out_dir + "/metrics.jsonl");
    std::string line;
    std::getline(in, line);
    const JsonValue header = parse_json(line, "header");
    EXPECT_EQ(header.find("type")->string, "header");
    EXPECT_EQ(header.find("recipe")->string, "bf16");
    EXPECT_EQ(header.find("tokens_per_step")->number, 64);
    EXPECT_NE(header.find("config")->string.find("[model]"), std::string::npos);
    int64_t steps = 0, evals = 0;
    while (std::getline(in, line)) {
        const JsonValue v = parse_json(line, "metrics");
        for (const char* key : {"step", "loss", "lr", "grad_norm", "tokens_per_s"})
            ASSERT_TRUE(v.find(key)) << key;
        evals += v.find("eval_loss") != nullptr;
        ++steps;
    }
    EXPECT_EQ(steps, 10);
    EXPECT_EQ(evals, 2); // steps 5 and 10
    EXPECT_NE(log.str().find("validation loss"), std::string::npos);
}

// 2N steps straight, and N + N with a resume from the checkpoint at N: identical losses.
TEST_F(TrainerTest, ResumeContinuesBitForBit) {
    for (const char* recipe : {"moss", "te-delayed", "fp8lm-o2"}) {
        SCOPED_TRACE(recipe);
        std::ostringstream log;
        TrainConfig c = small(recipe, 12);
        c.checkpoint_every = 6;
        const TrainSummary straight = train(c, {}, log);
        const std::string mid = c.out_dir + "/ckpt-000006.safetensors";
        ASSERT_TRUE(fs::exists(mid));
        TrainConfig again = c;
        again.out_dir = c.out_dir + "-resumed";
        TrainOptions options;
        options.resume = mid;
        const TrainSummary resumed = train(again, options, log);
        ASSERT_EQ(resumed.losses.size(), 6u);
        for (size_t i = 0; i < 6; ++i)
            EXPECT_EQ(resumed.losses[i], straight.losses[6 + i]) << "step " << 7 + i;
        EXPECT_EQ(resumed.val_loss, straight.val_loss);
    }
}

TEST_F(TrainerTest, CorruptOrTruncatedCheckpointsAreRefused) {
    std::ostringstream log;
    const TrainSummary s = train(small("bf16", 2), {}, log);
    std::vector<uint8_t> bytes = read_file(s.checkpoint);
    write_file_atomic(path("cut.safetensors"),
                      std::vector<uint8_t>(bytes.begin(), bytes.end() - 100));
    TrainOptions options;
    options.resume = path("cut.safetensors");
    EXPECT_THROW(train(small("bf16", 4), options, log), Error);
    SafeTensorsFile f = read_safetensors(s.checkpoint);
    f.metadata["format"] = "something-else";
    write_safetensors(path("foreign.safetensors"), f);
    EXPECT_THROW(read_checkpoint_header(path("foreign.safetensors")), Error);
    for (const char* key : {"config", "sample_rng"}) { // metadata missing: a message, not a crash
        f = read_safetensors(s.checkpoint);
        f.metadata.erase(key);
        write_safetensors(path("nometa.safetensors"), f);
        EXPECT_NE(testing::error_message([&] {
                      read_checkpoint_header(path("nometa.safetensors"));
                  }).find(key),
                  std::string::npos);
    }
    f = read_safetensors(s.checkpoint);
    f.tensors.erase("optim.m");
    write_safetensors(path("partial.safetensors"), f);
    options.resume = path("partial.safetensors");
    EXPECT_THROW(train(small("bf16", 4), options, log), Error);
}

TEST_F(TrainerTest, ConfigsAreValidatedKeyByKey) {
    auto message = [&](const std::string& toml) {
        std::ofstream(path("c.toml")) << toml;
        return testing::error_message([&] { validate(load_train_config(path("c.toml"))); });
    };
    EXPECT_NE(message("[train]\nstepz = 3\n").find("train.stepz"), std::string::npos);
    EXPECT_NE(message("[train]\nsteps = \"many\"\n").find("train.steps"), std::string::npos);
    EXPECT_NE(message("[train]\nlr = -1.0\n").find("train.lr"), std::string::npos);
    EXPECT_NE(message("[train]\nrecipe = \"fp4\"\n").find("fp4"), std::string::npos);
    EXPECT_NE(message("[model]\nn_head = 3\n").find("n_head"), std::string::npos);
    EXPECT_NE(message("[model]\nflavor = \"bert\"\n").find("model.flavor"), std::string::npos);
    EXPECT_NE(message("steps = 3\n").find("[section]"), std::string::npos);
    EXPECT_NE(message("[train\n").find("c.toml"), std::string::npos);
    EXPECT_NE(message("[train]\ncuda_graphs = 1\n").find("train.cuda_graphs"), std::string::npos);
    TrainConfig c = default_train_config();
    EXPECT_THROW(apply_override(c, "train.cuda_graphs=maybe"), Error);
    apply_override(c, "train.cuda_graphs=false");
    EXPECT_FALSE(c.cuda_graphs);
    EXPECT_THROW(apply_override(c, "train.steps=ten"), Error);
    EXPECT_THROW(apply_override(c, "nokey"), Error);
    apply_override(c, "train.lr=0.01");
    EXPECT_EQ(c.lr, 0.01);
}

// Every file in configs/ loads and validates; configs/tiny.toml is the built-in default.
TEST_F(TrainerTest, ShippedConfigsAreValidAndTinyIsTheDefault) {
    const fs::path configs = fs::path(OCTET_SOURCE_DIR) / "configs";
    int count = 0;
    for (const auto& e : fs::directory_iterator(configs)) {
        if (e.path().extension() != ".toml") continue;
        EXPECT_NO_THROW(validate(load_train_config(e.path().string()))) << e.path();
        ++count;
    }
    EXPECT_GE(count, 5);
    EXPECT_EQ(load_train_config((configs / "tiny.toml").string()).to_toml(),
              default_train_config().to_toml());
}

TEST_F(TrainerTest, ExportWritesAHuggingFaceGpt2Folder) {
    std::ostringstream log, out, err;
    const TrainSummary s = train(small("moss", 2), {}, log);
    ASSERT_EQ(run_cli({"export", "--checkpoint", s.checkpoint, "--out", path("hf")}, out, err), 0)
        << err.str();
    const SafeTensorsFile f = read_safetensors(path("hf/model.safetensors"));
    const int64_t vocab = Dataset::load(path("data")).vocab_size;
    EXPECT_EQ(f.tensors.at("wte.weight").shape, (std::vector<int64_t>{vocab, 32}));
    EXPECT_EQ(f.tensors.at("h.0.attn.c_attn.weight").shape,
              (std::vector<int64_t>{32, 96})); // Conv1D: [in, out]
    EXPECT_EQ(f.tensors.at("h.0.mlp.c_proj.weight").shape, (std::vector<int64_t>{128, 32}));
    EXPECT_EQ(f.tensors.at("h.0.attn.c_attn.weight").dtype, "BF16");
    EXPECT_TRUE(f.tensors.count("ln_f.bias"));
    const std::vector<uint8_t> config = read_file(path("hf/config.json"));
    const JsonValue cfg = parse_json(std::string(config.begin(), config.end()), "config.json");
    EXPECT_EQ(cfg.find("model_type")->string, "gpt2");
    EXPECT_EQ(cfg.find("n_embd")->number, 32);
    EXPECT_EQ(cfg.find("vocab_size")->number, double(vocab));
}

TEST_F(TrainerTest, SamplePlotAndCompareCommands) {
    std::ostringstream log;
    const TrainSummary s = train(small("bf16", 3), {}, log);
    std::ostringstream out, err;
    ASSERT_EQ(
        run_cli({"sample", "--checkpoint", s.checkpoint, "--prompt", "And the", "--tokens", "5"},
                out, err),
        0)
        << err.str();
    EXPECT_EQ(out.str().rfind("And the", 0), 0u);
    ASSERT_EQ(run_cli({"plot", small("bf16", 3).out_dir + "/metrics.jsonl", "-o", path("c.png")},
                      out, err),
              0)
        << err.str();
    EXPECT_GT(fs::file_size(path("c.png")), 1000u);
    std::ofstream(path("c.toml")) << small("bf16", 3).to_toml();
    ASSERT_EQ(run_cli({"compare", "--recipes", "bf16,moss", "--config", path("c.toml"), "--out",
                       path("cmp")},
                      out, err),
              0)
        << err.str();
    EXPECT_TRUE(fs::exists(path("cmp/bf16.jsonl")) && fs::exists(path("cmp/moss.jsonl")));
    EXPECT_TRUE(fs::exists(path("cmp/curves.png")));
    EXPECT_NE(out.str().find("gap vs bf16"), std::string::npos);
    // Bad input: status 2 and the key named.
    std::ostringstream bad_out, bad_err;
    EXPECT_EQ(
        run_cli({"train", "--config", path("c.toml"), "--set", "train.bogus=1"}, bad_out, bad_err),
        2);
    EXPECT_NE(bad_err.str().find("train.bogus"), std::string::npos);
    EXPECT_EQ(run_cli({"train", "--set", "data.dir=" + path("nowhere")}, bad_out, bad_err), 2);
    EXPECT_NE(bad_err.str().find("setup.sh"), std::string::npos);
    EXPECT_EQ(run_cli({"sample", "--checkpoint", path("text.txt")}, bad_out, bad_err), 2);
}

} // namespace
} // namespace octet
