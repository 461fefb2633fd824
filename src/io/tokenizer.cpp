// Byte-level BPE: training, encoding, decoding, files (see tokenizer.h).
#include "io/tokenizer.h"

#include <map>
#include <sstream>

#include "common/error.h"
#include "io/atomic_file.h"

namespace octet {

namespace {

enum class ByteClass { letter, digit, space, other };

ByteClass classify(unsigned char c) {
    const unsigned lower = unsigned(c | 0x20);
    if (c >= 0x80 || (lower >= 'a' && lower <= 'z')) return ByteClass::letter; // non-ASCII: letters
    if (c >= '0' && c <= '9') return ByteClass::digit;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
        return ByteClass::space;
    return ByteClass::other;
}

uint64_t pair_key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
}

} // namespace

std::vector<std::string> pretokenize(const std::string& text) {
    std::vector<std::string> chunks;
    size_t i = 0;
    while (i < text.size()) {
        size_t start = i;
        // One space joins the chunk that follows it, unless that is more whitespace.
        if (text[i] == ' ' && i + 1 < text.size() && classify(text[i + 1]) != ByteClass::space) ++i;
        const ByteClass cls = classify(text[i]);
        while (i < text.size() && classify(text[i]) == cls) {
            // A whitespace run leaves its last space to the next chunk.
            if (cls == ByteClass::space && text[i] == ' ' && i + 1 < text.size() && i > start &&
                classify(text[i + 1]) != ByteClass::space)
                break;
            ++i;
        }
        if (i == start) ++i; // cannot happen for valid classes; guards against a stall
        chunks.push_back(text.substr(start, i - start));
    }
    return chunks;
}

Tokenizer::Tokenizer() {
    for (int c = 0; c < 256; ++c) pieces_.push_back(std::string(1, char(c)));
}

void Tokenizer::add_merge(int32_t left, int32_t right) {
    const int32_t id = int32_t(pieces_.size());
    merges_.emplace_back(left, right);
    merge_rank_[pair_key(left, right)] = id;
    pieces_.push_back(pieces_[size_t(left)] + pieces_[size_t(right)]);
}

Tokenizer Tokenizer::train(const std::string& text, int64_t vocab_size) {
    if (vocab_size < 256 || vocab_size > 65536)
        throw Error("tokenizer vocabulary size must lie in [256, 65536] (got " +
                    std::to_string(vocab_size) + ")");
    std::map<std::string, int64_t> counts;
    for (const std::string& chunk : pretokenize(text)) ++counts[chunk];
    std::vector<std::vector<int32_t>> words;
    std::vector<int64_t> freq;
    for (const auto& [chunk, n] : counts) {
        std::vector<int32_t> ids;
        for (unsigned char c : chunk) ids.push_back(c);
        words.push_back(std::move(ids));
        freq.push_back(n);
    }
    Tokenizer t;
    while (t.vocab_size() < vocab_size) {
        std::unordered_map<uint64_t, int64_t> pairs;
        for (size_t w = 0; w < words.size(); ++w)
            for (size_t i = 0; i + 1 < words[w].size(); ++i)
                pairs[pair_key(words[w][i], words[w][i + 1])] += freq[w];
        uint64_t best = 0;
        int64_t best_count = 1;
        for (const auto& [key, n] : pairs)
            if (n > best_count || (n == best_count && n > 1 && key < best))
                best = key, best_count = n;
        if (best_count < 2) break;
        const int32_t left = int32_t(best >> 32), right = int32_t(best & 0xFFFFFFFFu);
        t.add_merge(left, right);
        const int32_t merged = int32_t(t.vocab_size() - 1);
        for (std::vector<int32_t>& ids : words) {
            size_t out = 0;
            for (size_t i = 0; i < ids.size(); ++i) {
                if (i + 1 < ids.size() && ids[i] == left && ids[i + 1] == right) {
                    ids[out++] = merged;
                    ++i;
                } else {
                    ids[out++] = ids[i];
                }
            }
            ids.resize(out);
        }
    }
    return t;
}

std::vector<int32_t> Tokenizer::encode_chunk(const std::string& chunk) const {
    auto hit = cache_.find(chunk);
    if (hit != cache_.end()) return hit->second;
    std::vector<int32_t> ids;
    for (unsigned char c : chunk) ids.push_back(c);
    // Apply merges in the order they were learned: always the earliest (lowest id) pair first.
    while (ids.size() > 1) {
        int32_t best = INT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < ids.size(); ++i) {
            auto it = merge_rank_.find(pair_key(ids[i], ids[i + 1]));
            if (it != merge_rank_.end() && it->second < best) best = it->second, at = i;
        }
        if (best == INT32_MAX) break;
        ids[at] = best;
        ids.erase(ids.begin() + long(at) + 1);
    }
    cache_.emplace(chunk, ids);
    return ids;
}

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
    std::vector<int32_t> out;
    for (const std::string& chunk : pretokenize(text)) {
        const std::vector<int32_t> ids = encode_chunk(chunk);
        out.insert(out.end(), ids.begin(), ids.end());
    }
    return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& tokens) const {
    std::string out;
    for (int32_t t : tokens) {
        if (t < 0 || t >= vocab_size())
            throw Error("token " + std::to_string(t) +
                        " is outside the tokenizer's vocabulary of " +
                        std::to_string(vocab_size()));
        out += pieces_[size_t(t)];
    }
    return out;
}

void Tokenizer::save(const std::string& path) const {
    std::string text = "octet-bpe 1\n";
    for (const auto& [a, b] : merges_) text += std::to_string(a) + " " + std::to_string(b) + "\n";
    write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

Tokenizer Tokenizer::load(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file(path);
    return parse(std::string(bytes.begin(), bytes.end()), path);
}

Tokenizer Tokenizer::parse(const std::string& text, const std::string& path) {
    std::istringstream in(text);
    std::string line;
    if (!std::getline(in, line) || line != "octet-bpe 1")
        throw Error(path + ": not an Octet tokenizer file (first line must be 'octet-bpe 1')");
    Tokenizer t;
    int64_t line_no = 1;
    while (std::getline(in, line)) {
        ++line_no;
        std::istringstream fields(line);
        int64_t a = -1, b = -1;
        std::string rest;
        if (!(fields >> a >> b) || (fields >> rest) || a < 0 || b < 0 || a >= t.vocab_size() ||
            b >= t.vocab_size())
            throw Error(path + ":" + std::to_string(line_no) +
                        ": expected two ids of earlier tokens, got '" + line + "'");
        if (t.vocab_size() >= 65536) throw Error(path + ": more than 65536 tokens");
        t.add_merge(int32_t(a), int32_t(b));
    }
    return t;
}

} // namespace octet
