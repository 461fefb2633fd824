// Datasets: loading, batching, preparation from raw text (see dataset.h).
#include "train/dataset.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/token_shards.h"

namespace octet {

Dataset Dataset::load(const std::string& dir) {
    namespace fs = std::filesystem;
    for (const char* f : {"train.bin", "val.bin"})
        if (!fs::exists(fs::path(dir) / f))
            throw Error("dataset '" + dir + "' has no " + f +
                        " (run scripts/setup.sh, or `octet data prepare "
                        "--text FILE --out " +
                        dir + "`)");
    Dataset d;
    d.train = read_token_shard((fs::path(dir) / "train.bin").string());
    d.val = read_token_shard((fs::path(dir) / "val.bin").string());
    int32_t max_token = 0;
    for (const auto* v : {&d.train, &d.val})
        for (int32_t t : *v) max_token = std::max(max_token, t);
    if (fs::exists(fs::path(dir) / "tokenizer.bpe")) {
        d.tokenizer = std::make_unique<Tokenizer>(
            Tokenizer::load((fs::path(dir) / "tokenizer.bpe").string()));
        d.vocab_size = d.tokenizer->vocab_size();
        if (max_token >= d.vocab_size)
            throw Error("dataset '" + dir + "': token " + std::to_string(max_token) +
                        " is outside its tokenizer's vocabulary of " +
                        std::to_string(d.vocab_size));
    } else {
        // Shards brought without a tokenizer (GPT-2 tokenized): the padded GPT-2 vocabulary.
        d.vocab_size = std::max<int64_t>(50304, (int64_t(max_token) + 64) / 64 * 64);
    }
    return d;
}

int64_t next_batch(const std::vector<int32_t>& tokens, int64_t cursor, int64_t batch, int64_t seq,
                   std::vector<int32_t>& x, std::vector<int32_t>& y) {
    const int64_t need = batch * seq + 1;
    if (int64_t(tokens.size()) < need)
        throw Error("dataset holds " + std::to_string(tokens.size()) +
                    " tokens, fewer than one batch of " + std::to_string(batch) + " x " +
                    std::to_string(seq) + " needs");
    if (cursor < 0 || cursor + need > int64_t(tokens.size())) cursor = 0;
    x.assign(tokens.begin() + cursor, tokens.begin() + cursor + need - 1);
    y.assign(tokens.begin() + cursor + 1, tokens.begin() + cursor + need);
    return cursor + batch * seq;
}

void prepare_text_dataset(const std::string& text_path, const std::string& dir, int64_t vocab_size,
                          double val_fraction) {
    if (!(val_fraction > 0 && val_fraction < 1))
        throw Error("validation fraction must lie in (0, 1)");
    const std::vector<uint8_t> bytes = read_file(text_path);
    const std::string text(bytes.begin(), bytes.end());
    if (text.empty()) throw Error(text_path + " is empty");
    // Split at a line boundary so that no line is cut in two.
    size_t split = size_t(double(text.size()) * (1 - val_fraction));
    while (split < text.size() && text[split - 1] != '\n') ++split;
    const std::string train_text = text.substr(0, split), val_text = text.substr(split);
    if (val_text.empty()) throw Error(text_path + ": too short to hold out a validation part");
    const Tokenizer tokenizer = Tokenizer::train(train_text, vocab_size);
    std::filesystem::create_directories(dir);
    tokenizer.save(dir + "/tokenizer.bpe");
    write_token_shard(dir + "/train.bin", tokenizer.encode(train_text));
    write_token_shard(dir + "/val.bin", tokenizer.encode(val_text));
}

} // namespace octet
