// Octet's error type. Library code throws octet::Error for bad input (a malformed file, an unknown
// recipe, an impossible shape); only the mains decide to print it and exit with status 2.
#pragma once

#include <stdexcept>
#include <string>

namespace octet {

class Error : public std::runtime_error {
  public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

} // namespace octet
