// `octet quant`: quantize one tensor with one recipe and write the result as .npz.
// Layout of the .npz (docs/file-formats.md):
//   codes           uint8, the input's shape: the FP8 bit patterns
//   format          0-d string: e4m3 | e5m2
//   recipe          0-d string: the recipe and its resolved options
//   scale_inv_<i>   float32 [grid_rows, grid_cols] for scale level i = 0, 1, …
//   scale_block_<i> int64 [2]: the (rows, cols) of the block one scale of level i covers
//   scale_e8m0_<i>  uint8, same grid, for levels stored as E8M0 codes
// Every stored scale MULTIPLIES: x ≈ decode(codes[r, c]) · Π_i scale_inv_<i>[r / br_i, c / bc_i]
// with the tensor viewed as [product of leading dims, last dim].
#include <ostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/npy.h"
#include "recipe/recipe.h"

namespace octet {

static const char* quant_help =
    R"(usage: octet quant --recipe R --in x.npy --out q.npz [--role ROLE]

Quantize a NumPy array with one FP8 recipe; write the FP8 codes and the scales to a .npz archive.

  --recipe R   te-current | te-delayed | rowwise | blockwise | mxfp8 | moss, with options as
               "name:key=value,...", e.g. blockwise:pow2=true or moss:group=128
  --in PATH    input .npy (float16/32/64 or integer, C order); viewed as
               [product of leading dims, last dim], the last dim being K
  --out PATH   output .npz (written atomically)
  --role ROLE  activation (default) | weight | gradient: recipes scale each role differently

The archive holds: codes (uint8, input shape), format, recipe, and for each scale level i
scale_inv_<i> (float32 grid), scale_block_<i> (block rows, cols) and, for E8M0 levels,
scale_e8m0_<i>. Stored scales multiply: x = decode(code) * prod_i scale_inv_<i>[r/br, c/bc].
)";

int cmd_quant(const std::vector<std::string>& argv, std::ostream& out) {
    const Args args(argv, {"recipe", "in", "out", "role"}, {"help"});
    if (args.has("help")) {
        out << quant_help;
        return 0;
    }
    const std::string spec = args.require("recipe");
    const std::string in_path = args.require("in");
    const std::string out_path = args.require("out");
    const TensorRole role = parse_role(args.get("role").value_or("activation"));
    const std::unique_ptr<Recipe> recipe = make_recipe(spec);
    const LoadedTensor x = load_tensor(in_path);

    const QuantizedTensor q = recipe->make_quantizer(role)->quantize(x.view());
    std::vector<std::pair<std::string, NpyArray>> entries;
    entries.emplace_back("codes", npy_from_u8(x.shape, q.codes));
    entries.emplace_back("format", npy_from_string(format_name(q.format)));
    entries.emplace_back("recipe", npy_from_string(recipe->describe()));
    for (size_t i = 0; i < q.scales.size(); ++i) {
        const ScaleGrid& g = q.scales[i];
        const std::string level = std::to_string(i);
        entries.emplace_back("scale_inv_" + level,
                             npy_from_float({g.grid_rows, g.grid_cols}, g.scale_inv));
        entries.emplace_back("scale_block_" + level,
                             npy_from_i64({2}, {g.block_rows, g.block_cols}));
        if (g.encoding == ScaleEncoding::e8m0)
            entries.emplace_back("scale_e8m0_" + level,
                                 npy_from_u8({g.grid_rows, g.grid_cols}, g.e8m0_codes()));
    }
    write_npz(out_path, entries);
    out << "wrote " << out_path << ": " << x.rows << "x" << x.cols << " " << format_name(q.format)
        << ", " << q.scales.size() << " scale level(s) — " << recipe->describe() << "\n";
    return 0;
}

} // namespace octet
