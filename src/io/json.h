// A small JSON reader and string escaper: enough for safetensors headers, Hugging Face configs
// and metrics lines. Malformed input throws Error with the byte offset.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace octet {

struct JsonValue {
    enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
    bool boolean = false;
    double number = 0;
    std::string string;
    std::vector<JsonValue> array;
    std::map<std::string, JsonValue> object;

    const JsonValue* find(const std::string& key) const;
};

JsonValue parse_json(const std::string& text, const std::string& what);
std::string json_escape(const std::string& s); // with the quotes

} // namespace octet
