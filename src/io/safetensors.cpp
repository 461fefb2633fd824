// safetensors reading and writing (see safetensors.h).
#include "io/safetensors.h"

#include <cstring>

#include "common/error.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "numerics/formats.h"

namespace octet {

static int64_t dtype_size(const std::string& dtype, const std::string& what) {
    if (dtype == "F64" || dtype == "I64") return 8;
    if (dtype == "F32" || dtype == "I32") return 4;
    if (dtype == "BF16" || dtype == "F16") return 2;
    if (dtype == "U8") return 1;
    throw Error(what + ": unsupported dtype '" + dtype + "'");
}

void write_safetensors(const std::string& path, const SafeTensorsFile& file) {
    std::string header = "{";
    size_t offset = 0;
    if (!file.metadata.empty()) {
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : file.metadata) {
            if (!first) header += ',';
            header += json_escape(k);
            header += ':';
            header += json_escape(v);
            first = false;
        }
        header += "}";
    }
    for (const auto& [name, t] : file.tensors) {
        int64_t n = dtype_size(t.dtype, path);
        for (int64_t d : t.shape) n *= d;
        if (size_t(n) != t.bytes.size())
            throw Error(path + ": tensor '" + name + "' has the wrong byte count");
        std::string shape;
        for (size_t i = 0; i < t.shape.size(); ++i) {
            if (i) shape += ',';
            shape += std::to_string(t.shape[i]);
        }
        if (header.size() > 1) header += ",";
        header += json_escape(name) + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":[" + shape +
                  "],\"data_offsets\":[" + std::to_string(offset) + "," +
                  std::to_string(offset + t.bytes.size()) + "]}";
        offset += t.bytes.size();
    }
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' '); // align the data, as the reference writer does
    const uint64_t n = header.size();
    std::vector<uint8_t> out(8 + n + offset);
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, header.data(), n);
    size_t at = 8 + n;
    for (const auto& [name, t] : file.tensors) {
        if (!t.bytes.empty()) std::memcpy(out.data() + at, t.bytes.data(), t.bytes.size());
        at += t.bytes.size();
    }
    write_file_atomic(path, out);
}

SafeTensorsFile read_safetensors(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file(path);
    if (bytes.size() < 8)
        throw Error(path + ": not a safetensors file (shorter than its 8-byte header length)");
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    if (n > bytes.size() - 8)
        throw Error(path + ": truncated safetensors file (header of " + std::to_string(n) +
                    " bytes)");
    const JsonValue header =
        parse_json(std::string(bytes.begin() + 8, bytes.begin() + 8 + long(n)), path);
    if (header.kind != JsonValue::Kind::object)
        throw Error(path + ": safetensors header is not a JSON object");
    const size_t data_at = 8 + n, data_size = bytes.size() - data_at;
    SafeTensorsFile file;
    for (const auto& [name, v] : header.object) {
        if (name == "__metadata__") {
            for (const auto& [k, s] : v.object) file.metadata[k] = s.string;
            continue;
        }
        const JsonValue* dtype = v.find("dtype");
        const JsonValue* shape = v.find("shape");
        const JsonValue* offsets = v.find("data_offsets");
        if (!dtype || !shape || !offsets || offsets->array.size() != 2)
            throw Error(path + ": tensor '" + name + "' lacks dtype, shape or data_offsets");
        SafeTensor t;
        t.dtype = dtype->string;
        int64_t count = dtype_size(t.dtype, path + ":" + name);
        for (const JsonValue& d : shape->array) {
            if (d.number < 0 || d.number > 1e12)
                throw Error(path + ": tensor '" + name + "' has a bad shape");
            t.shape.push_back(int64_t(d.number));
            count *= int64_t(d.number);
        }
        const double begin = offsets->array[0].number, end = offsets->array[1].number;
        if (begin < 0 || end < begin || end > double(data_size) || end - begin != double(count))
            throw Error(path + ": tensor '" + name +
                        "' lies outside the file or disagrees with its shape "
                        "(truncated or corrupt)");
        t.bytes.assign(bytes.begin() + long(data_at + size_t(begin)),
                       bytes.begin() + long(data_at + size_t(end)));
        file.tensors[name] = std::move(t);
    }
    return file;
}

SafeTensor safetensor_f32(const std::vector<int64_t>& shape, const float* data) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    SafeTensor t{"F32", shape, std::vector<uint8_t>(size_t(n) * 4)};
    std::memcpy(t.bytes.data(), data, t.bytes.size());
    return t;
}

SafeTensor safetensor_f64(const std::vector<double>& values) {
    SafeTensor t{"F64", {int64_t(values.size())}, std::vector<uint8_t>(values.size() * 8)};
    std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
    return t;
}

SafeTensor safetensor_bf16(const std::vector<int64_t>& shape, const float* data) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    SafeTensor t{"BF16", shape, std::vector<uint8_t>(size_t(n) * 2)};
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t code = encode(data[i], Format::bf16, Overflow::ieee);
        t.bytes[size_t(2 * i)] = uint8_t(code);
        t.bytes[size_t(2 * i + 1)] = uint8_t(code >> 8);
    }
    return t;
}

std::vector<float> safetensor_to_f32(const SafeTensor& t, const std::string& name) {
    if (t.dtype != "F32") throw Error("tensor '" + name + "' is " + t.dtype + ", expected F32");
    std::vector<float> v(t.bytes.size() / 4);
    std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
    return v;
}

std::vector<double> safetensor_to_f64(const SafeTensor& t, const std::string& name) {
    if (t.dtype != "F64") throw Error("tensor '" + name + "' is " + t.dtype + ", expected F64");
    std::vector<double> v(t.bytes.size() / 8);
    std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
    return v;
}

} // namespace octet
