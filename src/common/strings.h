// Small string helpers for messages.
#pragma once

#include <string>
#include <vector>

namespace octet {

// "a, b, c": for error messages that list what would have been accepted.
inline std::string join(const std::vector<std::string>& items,
                        const std::string& separator = ", ") {
    std::string out;
    for (const std::string& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

} // namespace octet
