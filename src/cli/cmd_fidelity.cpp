// `octet fidelity`: one table, recipe × fidelity metrics, for a tensor from a file or for the
// built-in heavy-tailed activation sample.
#include <cmath>
#include <cstdio>
#include <ostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "numerics/fidelity.h"
#include "numerics/synthetic.h"
#include "recipe/recipe.h"

namespace octet {

static const char* fidelity_help =
    R"(usage: octet fidelity [--in x.npy] [--role ROLE] [--recipes R1,R2,...]
                       [--tokens N] [--channels K] [--seed S]

Print, for each recipe, how faithfully it represents one tensor: SNR (dB), relative error,
the fraction of non-zeros flushed to zero and the fraction saturated.

  --in PATH     input .npy (viewed as [product of leading dims, last dim]); without it, a
                built-in heavy-tailed activation sample: Student-t values, log-normal channel
                magnitudes, 1% outlier channels (tokens x channels, default 1024 x 4096)
  --role ROLE   activation (default) | weight | gradient
  --recipes     comma-separated recipe specs (default: every recipe and the main variants)
  --tokens, --channels, --seed   shape and seed of the built-in sample

te-delayed is shown with its amax history primed by the same tensor (a steady state).
)";

static const std::vector<std::string> default_specs = {
    "te-current",          "te-current:pow2=true", "te-delayed", "rowwise",        "blockwise",
    "blockwise:pow2=true", "blockwise:group=32",   "mxfp8",      "moss:group=128", "moss:group=32",
};

static std::string format_db(double v) {
    char buf[32];
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
}

int cmd_fidelity(const std::vector<std::string>& argv, std::ostream& out) {
    const Args args(argv, {"in", "role", "recipes", "tokens", "channels", "seed"}, {"help"});
    if (args.has("help")) {
        out << fidelity_help;
        return 0;
    }
    const TensorRole role = parse_role(args.get("role").value_or("activation"));
    LoadedTensor x;
    std::string source;
    if (auto path = args.get("in")) {
        if (args.has("tokens") || args.has("channels") || args.has("seed"))
            throw Error("--tokens/--channels/--seed describe the built-in sample; not with --in");
        x = load_tensor(*path);
        source = *path;
    } else {
        x.rows = args.get_int("tokens", 1024, 1, 1 << 20);
        x.cols = args.get_int("channels", 4096, 1, 1 << 20);
        const int64_t seed = args.get_int("seed", 1, 0, INT64_MAX);
        x.values = heavy_tailed_activations(x.rows, x.cols, uint64_t(seed));
        x.shape = {x.rows, x.cols};
        source = "built-in heavy-tailed activations, seed " + std::to_string(seed);
    }
    const std::vector<std::string> specs =
        args.get("recipes") ? split_recipe_list(*args.get("recipes")) : default_specs;

    out << "fidelity of " << source << " (" << x.rows << " x " << x.cols << "), role "
        << role_name(role) << "\n\n";
    char line[256];
    std::snprintf(line, sizeof line, "%-24s %8s %12s %10s %10s %10s\n", "recipe", "SNR dB",
                  "row SNR dB", "rel err", "flushed %", "satur. %");
    out << line << std::string(79, '-') << "\n";
    for (const std::string& spec : specs) {
        const std::unique_ptr<Recipe> recipe = make_recipe(spec);
        const std::unique_ptr<Quantizer> quantizer = recipe->make_quantizer(role);
        if (recipe->name() == "te-delayed") quantizer->quantize(x.view()); // prime the history
        const QuantizedTensor q = quantizer->quantize(x.view());
        const FidelityMetrics m = measure_fidelity(x.view(), q);
        std::snprintf(line, sizeof line, "%-24s %8s %12s %10.3e %10.4f %10.4f\n", spec.c_str(),
                      format_db(m.snr_db).c_str(), format_db(m.snr_rows_db).c_str(), m.rel_error,
                      100 * m.flushed_fraction, 100 * m.saturated_fraction);
        out << line;
        if (m.nonfinite) out << "    (" << m.nonfinite << " NaN/Inf elements excluded)\n";
    }
    return 0;
}

} // namespace octet
