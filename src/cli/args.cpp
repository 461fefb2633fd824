// Flag parsing for the octet subcommands.
#include "cli/args.h"

#include <charconv>

#include "common/error.h"

namespace octet {

std::vector<std::string> split_recipe_list(const std::string& list) {
    std::vector<std::string> specs;
    size_t at = 0;
    while (at <= list.size()) {
        const size_t comma = list.find(',', at);
        const std::string piece =
            list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        const bool starts_recipe =
            piece.find('=') == std::string::npos || piece.find(':') != std::string::npos;
        if (starts_recipe || specs.empty())
            specs.push_back(piece);
        else
            specs.back() += "," + piece;
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    return specs;
}

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
           const std::set<std::string>& switches) {
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (a.rfind("--", 0) != 0) throw Error("unexpected argument '" + a + "'");
        const size_t eq = a.find('=');
        const std::string flag = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
        if (switches.count(flag)) {
            if (eq != std::string::npos) throw Error("--" + flag + " takes no value");
            switches_.insert(flag);
        } else if (valued.count(flag)) {
            if (eq != std::string::npos) {
                values_[flag].push_back(a.substr(eq + 1));
            } else {
                if (i + 1 >= argv.size()) throw Error("--" + flag + " needs a value");
                values_[flag].push_back(argv[++i]);
            }
        } else {
            throw Error("unknown flag '--" + flag + "' (see --help)");
        }
    }
}

bool Args::has(const std::string& flag) const {
    return switches_.count(flag) || values_.count(flag);
}

std::optional<std::string> Args::get(const std::string& flag) const {
    auto it = values_.find(flag);
    if (it == values_.end()) return std::nullopt;
    return it->second.back();
}

std::vector<std::string> Args::all(const std::string& flag) const {
    auto it = values_.find(flag);
    return it == values_.end() ? std::vector<std::string>() : it->second;
}

std::string Args::require(const std::string& flag) const {
    auto v = get(flag);
    if (!v) throw Error("missing required flag --" + flag + " (see --help)");
    return *v;
}

int64_t Args::get_int(const std::string& flag, int64_t fallback, int64_t min, int64_t max) const {
    auto v = get(flag);
    if (!v) return fallback;
    int64_t out = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
    if (ec != std::errc() || end != v->data() + v->size() || out < min || out > max)
        throw Error("--" + flag + "=" + *v + " is invalid (expected an integer in [" +
                    std::to_string(min) + ", " + std::to_string(max) + "])");
    return out;
}

} // namespace octet
