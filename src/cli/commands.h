// The octet subcommands. Each takes its arguments (after the subcommand name), writes to `out`,
// and throws Error on bad input; run_cli turns that into a message and exit status 2.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "numerics/quantized_tensor.h"

namespace octet {

int run_cli(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

int cmd_quant(const std::vector<std::string>& args, std::ostream& out);
int cmd_fidelity(const std::vector<std::string>& args, std::ostream& out);
int cmd_bench(const std::vector<std::string>& args, std::ostream& out);
int cmd_bench_gemm(const std::vector<std::string>& args, std::ostream& out);
int cmd_bench_quant(const std::vector<std::string>& args, std::ostream& out);
int cmd_train(const std::vector<std::string>& args, std::ostream& out);
int cmd_sample(const std::vector<std::string>& args, std::ostream& out);
int cmd_compare(const std::vector<std::string>& args, std::ostream& out);
int cmd_plot(const std::vector<std::string>& args, std::ostream& out);
int cmd_data(const std::vector<std::string>& args, std::ostream& out);
int cmd_tokenize(const std::vector<std::string>& args, std::ostream& out);
int cmd_export(const std::vector<std::string>& args, std::ostream& out);

// A tensor read from a .npy file and viewed as a matrix [product of leading dims, last dim]
// (a 0-d or 1-d array is one row).
struct LoadedTensor {
    std::vector<int64_t> shape;
    std::vector<float> values;
    int64_t rows = 0;
    int64_t cols = 0;
    MatrixView view() const { return {values.data(), rows, cols}; }
};

LoadedTensor load_tensor(const std::string& npy_path);

} // namespace octet
