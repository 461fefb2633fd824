// Parsing of a recipe spec "name:key=value,key=value". Each recipe reads the keys it knows;
// finish() then rejects whatever was left, so a typo never passes silently.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "numerics/formats.h"

namespace octet {

class RecipeOptions {
  public:
    // Splits the spec; throws Error on malformed pairs or repeated keys.
    explicit RecipeOptions(std::string_view spec);

    const std::string& name() const { return name_; }

    int64_t get_int(const std::string& key, int64_t fallback, int64_t min, int64_t max);
    double get_double(const std::string& key, double fallback, double min, double max);
    bool get_bool(const std::string& key, bool fallback);
    std::string get_choice(const std::string& key, const std::string& fallback,
                           const std::vector<std::string>& allowed);
    Format get_fp8_format(const std::string& key, Format fallback);

    // Throws Error naming every key no getter asked for.
    void finish() const;
    // The keys no getter asked for, as "key=value,key=value": options meant for another reader.
    std::string unused() const;

  private:
    const std::string* find(const std::string& key);
    std::string name_;
    std::map<std::string, std::string> values_;
    std::set<std::string> used_;
};

} // namespace octet
