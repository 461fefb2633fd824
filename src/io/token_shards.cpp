// llm.c token shards (see token_shards.h).
#include "io/token_shards.h"

#include <cstring>

#include "common/error.h"
#include "io/atomic_file.h"

namespace octet {

constexpr int32_t shard_magic = 20240520;
constexpr size_t header_bytes = 256 * 4;

std::vector<int32_t> read_token_shard(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file(path);
    if (bytes.size() < header_bytes)
        throw Error(path + ": not a token shard (shorter than its 1024-byte header)");
    int32_t header[3];
    std::memcpy(header, bytes.data(), sizeof header);
    if (header[0] != shard_magic)
        throw Error(path + ": not a token shard (magic " + std::to_string(header[0]) +
                    ", expected 20240520)");
    if (header[1] != 1)
        throw Error(path + ": unsupported token shard version " + std::to_string(header[1]));
    if (header[2] < 0 || bytes.size() - header_bytes != size_t(header[2]) * 2)
        throw Error(path + ": truncated or corrupt token shard (header says " +
                    std::to_string(header[2]) + " tokens, file holds " +
                    std::to_string((bytes.size() - header_bytes) / 2) + ")");
    std::vector<int32_t> tokens(static_cast<size_t>(header[2]));
    for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = int32_t(bytes[header_bytes + 2 * i] | (bytes[header_bytes + 2 * i + 1] << 8));
    return tokens;
}

void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens) {
    if (tokens.size() > size_t(INT32_MAX)) throw Error(path + ": too many tokens for one shard");
    std::vector<uint8_t> bytes(header_bytes + 2 * tokens.size(), 0);
    const int32_t header[3] = {shard_magic, 1, int32_t(tokens.size())};
    std::memcpy(bytes.data(), header, sizeof header);
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] < 0 || tokens[i] > 65535)
            throw Error(path + ": token " + std::to_string(tokens[i]) +
                        " does not fit a uint16 shard");
        bytes[header_bytes + 2 * i] = uint8_t(tokens[i]);
        bytes[header_bytes + 2 * i + 1] = uint8_t(tokens[i] >> 8);
    }
    write_file_atomic(path, bytes);
}

} // namespace octet
