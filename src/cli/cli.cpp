// The `octet` command: dispatch to subcommands, --help, --version, and the exit-status policy
// (0 success, 2 bad input or usage, 1 internal failure).
#include <exception>
#include <ostream>

#include "cli/commands.h"
#include "common/error.h"
#include "io/npy.h"

namespace octet {

static const char* usage = R"(octet — FP8 training engine for GPT-style transformers on Hopper

usage: octet <command> [flags]

commands:
  train      train a GPT (no arguments: the tiny model on the default data, moss recipe)
  sample     generate text from a checkpoint
  compare    train one config under several recipes; curves, table of final losses
  plot       loss curves of runs (metrics .jsonl) in one PNG
  export     a checkpoint as a Hugging Face GPT-2 folder
  data       prepare a dataset from raw text (tokenizer + token shards)
  tokenize   train / encode / decode with Octet's byte-level BPE
  quant      quantize a .npy tensor with one recipe, write codes and scales to .npz
  fidelity   table of SNR / error / flush / saturation of every recipe on a tensor
             (a built-in heavy-tailed activation sample when no --in is given)
  bench      training throughput: octet bench train [--model M] [--recipes R1,R2]

  octet <command> --help   flags of one command
  octet --version
)";

LoadedTensor load_tensor(const std::string& npy_path) {
    const NpyArray a = read_npy(npy_path);
    LoadedTensor t;
    t.shape = a.shape;
    t.values = npy_to_float(a, npy_path);
    t.cols = a.shape.empty() ? 1 : a.shape.back();
    t.rows = t.cols == 0 ? 0 : a.numel() / t.cols;
    if (a.shape.size() <= 1) t.rows = 1;
    return t;
}

int run_cli(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
    if (argv.empty()) return run_cli({"train"}, out, err); // the main job
    if (argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
        out << usage;
        return 0;
    }
    if (argv[0] == "--version") {
        out << "octet " << OCTET_VERSION << "\n";
        return 0;
    }
    const std::string command = argv[0];
    const std::vector<std::string> rest(argv.begin() + 1, argv.end());
    try {
        if (command == "quant") return cmd_quant(rest, out);
        if (command == "fidelity") return cmd_fidelity(rest, out);
        if (command == "bench") return cmd_bench(rest, out);
        if (command == "train") return cmd_train(rest, out);
        if (command == "sample") return cmd_sample(rest, out);
        if (command == "compare") return cmd_compare(rest, out);
        if (command == "plot") return cmd_plot(rest, out);
        if (command == "data") return cmd_data(rest, out);
        if (command == "tokenize") return cmd_tokenize(rest, out);
        if (command == "export") return cmd_export(rest, out);
        err << "octet: unknown command '" << command << "'\n\n" << usage;
        return 2;
    } catch (const Error& e) {
        err << "octet " << command << ": error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        err << "octet " << command << ": internal error: " << e.what() << "\n";
        return 1;
    }
}

} // namespace octet
