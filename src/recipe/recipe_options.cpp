// Recipe spec parsing with errors that name the recipe, the key and the bad value.
#include "recipe/recipe_options.h"

#include <charconv>

#include "common/error.h"
#include "common/strings.h"

namespace octet {

static std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
}

RecipeOptions::RecipeOptions(std::string_view spec) {
    const size_t colon = spec.find(':');
    name_ = trim(spec.substr(0, colon));
    if (colon == std::string_view::npos) return;
    std::string_view rest = spec.substr(colon + 1);
    while (!rest.empty()) {
        const size_t comma = rest.find(',');
        const std::string_view pair = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        const size_t eq = pair.find('=');
        const std::string key = trim(pair.substr(0, eq));
        if (eq == std::string_view::npos || key.empty())
            throw Error("recipe '" + name_ + "': option '" + trim(pair) +
                        "' is not of the form key=value");
        if (!values_.emplace(key, trim(pair.substr(eq + 1))).second)
            throw Error("recipe '" + name_ + "': option '" + key + "' given twice");
    }
}

const std::string* RecipeOptions::find(const std::string& key) {
    used_.insert(key);
    auto it = values_.find(key);
    return it == values_.end() ? nullptr : &it->second;
}

static Error bad_value(const std::string& recipe, const std::string& key, const std::string& value,
                       const std::string& expected) {
    return Error("recipe '" + recipe + "': option " + key + "=" + value + " is invalid (expected " +
                 expected + ")");
}

int64_t RecipeOptions::get_int(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
    const std::string* v = find(key);
    if (!v) return fallback;
    int64_t out = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
    const std::string range =
        "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    if (ec != std::errc() || end != v->data() + v->size() || out < min || out > max)
        throw bad_value(name_, key, *v, range);
    return out;
}

double RecipeOptions::get_double(const std::string& key, double fallback, double min, double max) {
    const std::string* v = find(key);
    if (!v) return fallback;
    size_t used = 0;
    double out = 0;
    const std::string range =
        "a number in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    try {
        out = std::stod(*v, &used);
    } catch (const std::exception&) {
        throw bad_value(name_, key, *v, range);
    }
    if (used != v->size() || !(out >= min && out <= max)) throw bad_value(name_, key, *v, range);
    return out;
}

bool RecipeOptions::get_bool(const std::string& key, bool fallback) {
    const std::string* v = find(key);
    if (!v) return fallback;
    if (*v == "true" || *v == "1") return true;
    if (*v == "false" || *v == "0") return false;
    throw bad_value(name_, key, *v, "true or false");
}

std::string RecipeOptions::get_choice(const std::string& key, const std::string& fallback,
                                      const std::vector<std::string>& allowed) {
    const std::string* v = find(key);
    if (!v) return fallback;
    for (const std::string& a : allowed)
        if (*v == a) return a;
    throw bad_value(name_, key, *v, join(allowed, " | "));
}

Format RecipeOptions::get_fp8_format(const std::string& key, Format fallback) {
    const std::string s =
        get_choice(key, fallback == Format::e4m3 ? "e4m3" : "e5m2", {"e4m3", "e5m2"});
    return s == "e4m3" ? Format::e4m3 : Format::e5m2;
}

std::string RecipeOptions::unused() const {
    std::string out;
    for (const auto& [key, value] : values_) {
        if (used_.count(key)) continue;
        if (!out.empty()) out += ',';
        out += key;
        out += '=';
        out += value;
    }
    return out;
}

void RecipeOptions::finish() const {
    std::vector<std::string> unknown;
    for (const auto& [key, value] : values_)
        if (!used_.count(key)) unknown.push_back(key);
    if (unknown.empty()) return;
    throw Error("recipe '" + name_ + "': unknown option(s) " + join(unknown) +
                " (known: " + join({used_.begin(), used_.end()}) + ")");
}

} // namespace octet
