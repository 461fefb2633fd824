// Whole-file reads, and writes that are atomic: a temporary file beside the target is written,
// fsync'ed and renamed over it, so a crash leaves either the old file or the new one, never half.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace octet {

std::vector<uint8_t> read_file(const std::string& path);                            // throws Error
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes); // throws Error

} // namespace octet
