// Token files in llm.c's shard format, so users can bring GPT-2-tokenized data (FineWeb …):
//   header: 256 little-endian int32 — [0] magic 20240520, [1] version 1, [2] token count
//   body:   that many uint16 tokens.
// Octet's own prepared datasets use the same format.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace octet {

std::vector<int32_t> read_token_shard(const std::string& path); // throws Error naming the problem
void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens); // atomic

} // namespace octet
