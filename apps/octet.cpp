// The `octet` command-line tool: a thin main over cli/ (which owns the commands and exit codes).
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    return octet::run_cli(args, std::cout, std::cerr);
}
