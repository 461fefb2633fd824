// `octet data prepare` and `octet tokenize`: datasets and tokenizers from raw text.
#include <ostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "io/atomic_file.h"
#include "io/token_shards.h"
#include "io/tokenizer.h"
#include "train/dataset.h"

namespace octet {

static const char* data_help =
    R"(usage: octet data prepare --text FILE --out DIR [--vocab-size N] [--val-fraction F]

Make a dataset from raw text: train a byte-level BPE tokenizer (default vocabulary 1024) on all but
the last F of the text (default 0.05, cut at a line end), and write DIR/tokenizer.bpe,
DIR/train.bin and DIR/val.bin (llm.c token shards). `octet train --set data.dir=DIR` uses it.
)";

int cmd_data(const std::vector<std::string>& argv, std::ostream& out) {
    if (argv.empty() || argv[0] == "--help" || argv[0] == "-h") {
        out << data_help;
        return argv.empty() ? 2 : 0;
    }
    if (argv[0] != "prepare") throw Error("expected 'octet data prepare' (see octet data --help)");
    const Args args({argv.begin() + 1, argv.end()}, {"text", "out", "vocab-size", "val-fraction"},
                    {"help"});
    if (args.has("help")) {
        out << data_help;
        return 0;
    }
    const std::string fraction = args.get("val-fraction").value_or("0.05");
    char* end = nullptr;
    const double f = std::strtod(fraction.c_str(), &end);
    if (end != fraction.c_str() + fraction.size())
        throw Error("--val-fraction=" + fraction + " is not a number");
    const std::string dir = args.require("out");
    prepare_text_dataset(args.require("text"), dir, args.get_int("vocab-size", 1024, 256, 65536),
                         f);
    const Dataset d = Dataset::load(dir);
    out << "prepared " << dir << ": " << d.train.size() << " train and " << d.val.size()
        << " validation tokens, vocabulary " << d.vocab_size << "\n";
    return 0;
}

static const char* tokenize_help =
    R"(usage: octet tokenize train  --in TEXT --vocab-size N --out TOKENIZER.bpe
       octet tokenize encode --tokenizer T.bpe --in TEXT --out TOKENS.bin
       octet tokenize decode --tokenizer T.bpe --in TOKENS.bin

Octet's byte-level BPE: learn merges from a text, encode text into an llm.c token shard, decode a
shard back to text (on standard output).
)";

int cmd_tokenize(const std::vector<std::string>& argv, std::ostream& out) {
    if (argv.empty() || argv[0] == "--help" || argv[0] == "-h") {
        out << tokenize_help;
        return argv.empty() ? 2 : 0;
    }
    const std::string verb = argv[0];
    const Args args({argv.begin() + 1, argv.end()}, {"in", "out", "vocab-size", "tokenizer"},
                    {"help"});
    if (args.has("help")) {
        out << tokenize_help;
        return 0;
    }
    auto read_text = [&] {
        const std::vector<uint8_t> b = read_file(args.require("in"));
        return std::string(b.begin(), b.end());
    };
    if (verb == "train") {
        const Tokenizer t =
            Tokenizer::train(read_text(), args.get_int("vocab-size", 1024, 256, 65536));
        t.save(args.require("out"));
        out << "wrote " << args.require("out") << ": vocabulary " << t.vocab_size() << "\n";
    } else if (verb == "encode") {
        const Tokenizer t = Tokenizer::load(args.require("tokenizer"));
        const std::vector<int32_t> tokens = t.encode(read_text());
        write_token_shard(args.require("out"), tokens);
        out << "wrote " << args.require("out") << ": " << tokens.size() << " tokens\n";
    } else if (verb == "decode") {
        const Tokenizer t = Tokenizer::load(args.require("tokenizer"));
        out << t.decode(read_token_shard(args.require("in")));
    } else {
        throw Error("unknown tokenize verb '" + verb + "' (train | encode | decode)");
    }
    return 0;
}

} // namespace octet
