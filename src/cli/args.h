// Command-line flags of one subcommand: "--name value" or "--name=value", and bare switches.
// Every flag must be declared; anything else is an error that names it.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace octet {

// A --recipes list: comma-separated recipe specs whose own options are comma-separated too
// ("moss:group=128,resync=100,bf16"). A piece without '=' or with ':' starts a new spec; the
// others continue the previous one.
std::vector<std::string> split_recipe_list(const std::string& list);

class Args {
  public:
    // `valued`: flags that take a value; `switches`: flags that do not. Throws Error on an unknown
    // flag, a missing value or a stray positional argument.
    Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
         const std::set<std::string>& switches);

    bool has(const std::string& flag) const;
    std::optional<std::string> get(const std::string& flag) const; // the last one given
    std::vector<std::string> all(const std::string& flag) const;   // every one, in order
    std::string require(const std::string& flag) const;            // throws Error naming the flag
    int64_t get_int(const std::string& flag, int64_t fallback, int64_t min, int64_t max) const;

  private:
    std::map<std::string, std::vector<std::string>> values_;
    std::set<std::string> switches_;
};

} // namespace octet
