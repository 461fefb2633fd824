// The octet command line (cli/): `quant` writes an archive whose documented layout reproduces the
// library's dequantization; `fidelity` prints the table; bad input exits with status 2 and a
// message naming the problem, and writes nothing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/npy.h"
#include "recipe/recipe.h"
#include "tests/harness/fresh_seed.h"
#include "tests/harness/temp_dir.h"

namespace octet {
namespace {

namespace fs = std::filesystem;
using testing::fresh_seed;
using testing::random_matrix;
using testing::seed_note;

struct CliRun {
    int status;
    std::string out, err;
};

CliRun run(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    const int status = run_cli(args, out, err);
    return {status, out.str(), err.str()};
}

class CliTest : public testing::TempDirTest {};

TEST_F(CliTest, QuantArchiveReproducesTheLibrarysDequantization) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(seed_note(seed));
    Rng rng(seed);
    const std::vector<float> x = random_matrix(rng, 6 * 7, 200, 4.0);
    write_npy(path("x.npy"), npy_from_float({6, 7, 200}, x)); // rank 3: viewed as 42 × 200
    for (const std::string spec : {"moss", "blockwise", "mxfp8", "te-delayed", "rowwise"}) {
        const CliRun r =
            run({"quant", "--recipe", spec, "--in", path("x.npy"), "--out", path("q.npz")});
        ASSERT_EQ(r.status, 0) << r.err;
        const auto npz = read_npz(path("q.npz"));
        const NpyArray& codes = npz.at("codes");
        EXPECT_EQ(codes.shape, (std::vector<int64_t>{6, 7, 200}));
        // Rebuild x̂ from the archive alone, by the documented rule.
        const Format format =
            npy_to_string(npz.at("format"), "format") == "e4m3" ? Format::e4m3 : Format::e5m2;
        std::vector<float> xq(x.size());
        for (int64_t i = 0; i < int64_t(x.size()); ++i)
            xq[size_t(i)] = decode(codes.bytes[size_t(i)], format);
        for (int level = 0; npz.count("scale_inv_" + std::to_string(level)); ++level) {
            const std::vector<float> s =
                npy_to_float(npz.at("scale_inv_" + std::to_string(level)), "s");
            const std::vector<float> block =
                npy_to_float(npz.at("scale_block_" + std::to_string(level)), "b");
            const int64_t grid_cols = npz.at("scale_inv_" + std::to_string(level)).shape[1];
            for (int64_t i = 0; i < int64_t(x.size()); ++i) {
                const int64_t row = i / 200, col = i % 200;
                xq[size_t(i)] *=
                    s[size_t((row / int64_t(block[0])) * grid_cols + col / int64_t(block[1]))];
            }
        }
        auto quantizer = make_recipe(spec)->make_quantizer(TensorRole::activation);
        const std::vector<float> expected = dequantize(quantizer->quantize({x.data(), 42, 200}));
        EXPECT_EQ(xq, expected) << spec;
    }
}

TEST_F(CliTest, FidelityPrintsOneRowPerRecipe) {
    const CliRun r = run({"fidelity", "--tokens", "64", "--channels", "256"});
    ASSERT_EQ(r.status, 0) << r.err;
    for (const char* row : {"te-current", "te-delayed", "rowwise", "blockwise", "mxfp8",
                            "moss:group=32", "SNR dB", "flushed %"})
        EXPECT_NE(r.out.find(row), std::string::npos) << row << "\n" << r.out;
    const CliRun chosen = run({"fidelity", "--tokens", "8", "--channels", "64", "--recipes",
                               "moss:group=128,global_rows=4,rowwise"});
    ASSERT_EQ(chosen.status, 0) << chosen.err;
    EXPECT_NE(chosen.out.find("moss:group=128,global_rows=4"), std::string::npos) << chosen.out;
    EXPECT_NE(chosen.out.find("rowwise"), std::string::npos);
}

TEST_F(CliTest, BadInputExitsWithStatusTwoAndNamesTheProblem) {
    write_npy(path("x.npy"), npy_from_float({2, 2}, {1, 2, 3, 4}));
    std::ofstream(path("junk.npy")) << "not a numpy file";
    struct Case {
        std::vector<std::string> args;
        std::string message;
    };
    const Case cases[] = {
        {{"quant", "--recipe", "fp4", "--in", path("x.npy"), "--out", path("q.npz")},
         "unknown recipe 'fp4'"},
        {{"quant", "--recipe", "moss:grup=3", "--in", path("x.npy"), "--out", path("q.npz")},
         "grup"},
        {{"quant", "--recipe", "moss", "--in", path("nope.npy"), "--out", path("q.npz")},
         "cannot open"},
        {{"quant", "--recipe", "moss", "--in", path("junk.npy"), "--out", path("q.npz")},
         "bad magic"},
        {{"quant", "--recipe", "moss", "--in", path("x.npy")}, "missing required flag --out"},
        {{"quant", "--recipe", "moss", "--in", path("x.npy"), "--out", path("q.npz"), "--role",
          "bias"},
         "bias"},
        {{"quant", "--bogus"}, "unknown flag '--bogus'"},
        {{"fidelity", "--in", path("junk.npy")}, "bad magic"},
        {{"fidelity", "--tokens", "-3"}, "--tokens=-3"},
        {{"fidelity", "--in", path("x.npy"), "--seed", "3"}, "built-in sample"},
        {{"frobnicate"}, "unknown command 'frobnicate'"},
        {{"bench", "train", "--model", "gpt5"}, "unknown model 'gpt5'"},
        {{"bench", "train", "--recipes", "bf16,fp4"}, "unknown recipe 'fp4'"},
        {{"bench", "train", "--device", "cuda", "--recipes", "moss"}, "device cuda: "},
        {{"bench", "train", "--device", "tpu"}, "device must be auto, cpu or cuda"},
        {{"bench", "infer"}, "octet bench train"},
        // No GPU here (or no CUDA in the build): refused by name, nothing allocated first.
        {{"bench", "gemm"}, "octet bench gemm"},
        {{"bench", "gemm", "--shapes", "1.3B fc2,1.3B fc3"}, "unknown shape '1.3B fc3'"},
        {{"bench", "gemm", "--shapes", ""}, "unknown shape ''"},
        {{"bench", "gemm", "--shape", "1.3B fc2"}, "--shapes NAMES (got '--shape')"},
        {{"bench", "gemm", "--shapes"}, "--shapes needs a value"},
        {{"bench", "gemm", "--shapes", "7B fc", "7B fc2"}, "then nothing (got '7B fc2')"},
        {{"bench", "quant"}, "octet bench quant"},
    };
    for (const Case& c : cases) {
        const CliRun r = run(c.args);
        EXPECT_EQ(r.status, 2) << c.message;
        EXPECT_NE(r.err.find(c.message), std::string::npos)
            << "wanted '" << c.message << "' in: " << r.err;
    }
    EXPECT_FALSE(fs::exists(path("q.npz"))); // nothing half-written
}

TEST(RecipeList, OptionsStayWithTheirRecipe) {
    EXPECT_EQ(
        split_recipe_list("moss:group=128,resync=100,bf16,blockwise:pow2=true"),
        (std::vector<std::string>{"moss:group=128,resync=100", "bf16", "blockwise:pow2=true"}));
    EXPECT_EQ(split_recipe_list("bf16"), (std::vector<std::string>{"bf16"}));
}

TEST_F(CliTest, BenchTrainPrintsThroughputPerRecipe) {
    const CliRun r =
        run({"bench", "train", "--recipes", "bf16,moss", "--steps", "1", "--batch", "1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("tokens/s"), std::string::npos);
    EXPECT_NE(r.out.find("moss"), std::string::npos) << r.out;
}

TEST_F(CliTest, HelpAndVersion) {
    for (const char* command : {"quant", "fidelity"}) {
        const CliRun r = run({command, "--help"});
        EXPECT_EQ(r.status, 0);
        EXPECT_NE(r.out.find("usage: octet"), std::string::npos);
    }
    EXPECT_EQ(run({"--help"}).status, 0);
    EXPECT_NE(run({"--version"}).out.find("octet "), std::string::npos);
}

// The real binary, as a user runs it: exit statuses reach the shell.
TEST_F(CliTest, TheBinaryReportsStatusToTheShell) {
    const std::string bin = OCTET_BINARY;
    const int ok = std::system((bin + " fidelity --tokens 4 --channels 64 > /dev/null").c_str());
    EXPECT_EQ(WEXITSTATUS(ok), 0);
    const int bad = std::system((bin + " quant --recipe nope --in x --out y 2> /dev/null").c_str());
    EXPECT_EQ(WEXITSTATUS(bad), 2);
}

} // namespace
} // namespace octet
