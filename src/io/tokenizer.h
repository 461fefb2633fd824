// Octet's byte-level BPE tokenizer. Tokens 0–255 are the bytes, so any byte string encodes and
// decodes back exactly; each further token is a merge of two earlier ones, learned from a text.
// Text is first cut into chunks as GPT-2 does (a letter run, a digit run, a run of other marks,
// each taking one leading space; whitespace runs alone), and merges never cross chunks.
// File format (text): "octet-bpe 1", then one merge per line: "<left id> <right id>".
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace octet {

class Tokenizer {
  public:
    Tokenizer(); // bytes only (vocabulary 256)

    // Learns merges from `text` until the vocabulary has `vocab_size` tokens (or no pair occurs
    // twice). Deterministic: ties go to the smallest pair of ids.
    static Tokenizer train(const std::string& text, int64_t vocab_size);
    static Tokenizer load(const std::string& path); // throws Error on a malformed file
    // The same from the file's text; `path` names the source in messages.
    static Tokenizer parse(const std::string& text, const std::string& path);
    void save(const std::string& path) const; // atomic

    std::vector<int32_t> encode(const std::string& text) const;
    std::string decode(const std::vector<int32_t>& tokens) const; // throws Error on an unknown id
    int64_t vocab_size() const { return int64_t(pieces_.size()); }

  private:
    void add_merge(int32_t left, int32_t right);
    std::vector<int32_t> encode_chunk(const std::string& chunk) const;

    std::vector<std::pair<int32_t, int32_t>> merges_;
    std::vector<std::string> pieces_;                  // token id → bytes
    std::unordered_map<uint64_t, int32_t> merge_rank_; // (left, right) → merged id
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// The chunks a text is cut into before merging (exposed for tests).
std::vector<std::string> pretokenize(const std::string& text);

} // namespace octet
