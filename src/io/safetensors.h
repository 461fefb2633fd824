// safetensors files (the ecosystem's format): 8-byte little-endian header length N, N bytes of
// JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the raw little-endian tensor bytes. Written atomically; on reading, every offset, shape and
// dtype is checked against the file, so a corrupt or truncated file is an Error, never a crash.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace octet {

struct SafeTensor {
    std::string dtype; // "F32", "F64", "BF16", "F16", "I32", "I64", "U8"
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

struct SafeTensorsFile {
    std::map<std::string, SafeTensor> tensors;
    std::map<std::string, std::string> metadata;
};

void write_safetensors(const std::string& path, const SafeTensorsFile& file);
SafeTensorsFile read_safetensors(const std::string& path);

SafeTensor safetensor_f32(const std::vector<int64_t>& shape, const float* data);
SafeTensor safetensor_f64(const std::vector<double>& values);
SafeTensor safetensor_bf16(const std::vector<int64_t>& shape, const float* data);
std::vector<float> safetensor_to_f32(const SafeTensor& t, const std::string& name);
std::vector<double> safetensor_to_f64(const SafeTensor& t, const std::string& name);

} // namespace octet
