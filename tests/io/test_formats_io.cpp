// The trainer's files: the BPE tokenizer (round trips on random bytes), llm.c token shards and
// safetensors, each refusing corrupt or truncated input with a message instead of a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/token_shards.h"
#include "io/tokenizer.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/temp_dir.h"

namespace octet {
namespace {

namespace fs = std::filesystem;

class FilesTest : public testing::TempDirTest {};

const char* sample_text =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep.\n"
    "And God said, Let there be light: and there was light. 123 4567!!  \t tabs\n";

TEST_F(FilesTest, TokenizerRoundTripsRandomBytesAndItsTrainingText) {
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(testing::seed_note(seed));
    std::string corpus;
    for (int i = 0; i < 20; ++i) corpus += sample_text;
    const Tokenizer t = Tokenizer::train(corpus, 400);
    EXPECT_GT(t.vocab_size(), 300);
    EXPECT_EQ(t.decode(t.encode(corpus)), corpus);
    EXPECT_LT(t.encode(corpus).size(), corpus.size() / 2); // merges compress the text they learned
    Rng rng(seed);
    for (int i = 0; i < 500; ++i) {
        std::string s(rng.next_u64() % 64, '\0');
        for (char& c : s) c = char(rng.next_u64() % 256); // any bytes, invalid UTF-8 included
        ASSERT_EQ(t.decode(t.encode(s)), s);
        std::string chunks;
        for (const std::string& c : pretokenize(s)) chunks += c;
        ASSERT_EQ(chunks, s);
    }
    // Saved and loaded, it encodes the same way.
    t.save(path("t.bpe"));
    const Tokenizer back = Tokenizer::load(path("t.bpe"));
    EXPECT_EQ(back.encode(corpus), t.encode(corpus));
    EXPECT_EQ(back.vocab_size(), t.vocab_size());
    // Deterministic training.
    EXPECT_EQ(Tokenizer::train(corpus, 400).encode(corpus), t.encode(corpus));
}

TEST_F(FilesTest, TokenizerRefusesBadFilesAndIds) {
    std::ofstream(path("bad.bpe")) << "octet-bpe 1\n65 66\n300 1\n";
    EXPECT_THROW(Tokenizer::load(path("bad.bpe")), Error); // 300 does not exist yet
    std::ofstream(path("other.bpe")) << "hello\n";
    EXPECT_THROW(Tokenizer::load(path("other.bpe")), Error);
    EXPECT_THROW(Tokenizer().decode({256}), Error);
    EXPECT_THROW(Tokenizer::train("abc", 100), Error);
}

TEST_F(FilesTest, TokenShardsRoundTripAndRefuseCorruption) {
    const std::vector<int32_t> tokens = {0, 1, 50256, 65535, 7};
    write_token_shard(path("a.bin"), tokens);
    EXPECT_EQ(read_token_shard(path("a.bin")), tokens);
    EXPECT_EQ(fs::file_size(path("a.bin")), 1024u + 2 * tokens.size());
    std::vector<uint8_t> bytes = read_file(path("a.bin"));
    bytes.pop_back();
    write_file_atomic(path("short.bin"), bytes);
    EXPECT_THROW(read_token_shard(path("short.bin")), Error);
    bytes[0] ^= 1;
    write_file_atomic(path("magic.bin"), bytes);
    EXPECT_THROW(read_token_shard(path("magic.bin")), Error);
    EXPECT_THROW(write_token_shard(path("big.bin"), {70000}), Error);
}

TEST_F(FilesTest, SafetensorsRoundTripAndRefuseCorruption) {
    SafeTensorsFile f;
    const float w[6] = {1, 2, 3, 4, 5, 6};
    f.tensors["w"] = safetensor_f32({2, 3}, w);
    f.tensors["s"] = safetensor_f64({0.5, -2});
    f.tensors["h"] = safetensor_bf16({2}, w);
    f.metadata["step"] = "12";
    write_safetensors(path("m.safetensors"), f);
    const SafeTensorsFile back = read_safetensors(path("m.safetensors"));
    EXPECT_EQ(back.metadata.at("step"), "12");
    EXPECT_EQ(back.tensors.at("w").shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(safetensor_to_f32(back.tensors.at("w"), "w"), std::vector<float>(w, w + 6));
    EXPECT_EQ(safetensor_to_f64(back.tensors.at("s"), "s"), (std::vector<double>{0.5, -2}));
    EXPECT_EQ(back.tensors.at("h").bytes,
              (std::vector<uint8_t>{0x80, 0x3F, 0x00, 0x40})); // 1.0, 2.0

    std::vector<uint8_t> bytes = read_file(path("m.safetensors"));
    for (size_t cut : {size_t(3), size_t(20), bytes.size() - 1}) {
        write_file_atomic(path("cut.safetensors"),
                          std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(cut)));
        EXPECT_THROW(read_safetensors(path("cut.safetensors")), Error) << "cut at " << cut;
    }
    std::vector<uint8_t> garbled = bytes;
    garbled[10] = '!';
    write_file_atomic(path("garbled.safetensors"), garbled);
    EXPECT_THROW(read_safetensors(path("garbled.safetensors")), Error);
    std::vector<uint8_t> huge = bytes;
    huge[7] = 0x7F; // header length beyond the file
    write_file_atomic(path("huge.safetensors"), huge);
    EXPECT_THROW(read_safetensors(path("huge.safetensors")), Error);
}

} // namespace
} // namespace octet
