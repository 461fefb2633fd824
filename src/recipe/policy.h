// Precision policies: a recipe applied to a whole model. For each tensor role, the policy names
// its representation; everything it does not name stays in high precision, as DeepSeek-V3 and TE
// keep it: embeddings, norms, attention and softmax in FP32 arithmetic, the LM head as a BF16
// GEMM. docs/recipes.md lists the policies side by side, with sources.
//
//   policy      linear GEMMs (x, W, dy)        weight grads   master   Adam m   Adam v
//   fp32        FP32                           FP32           FP32     FP32     FP32
//   bf16        BF16 inputs, FP32 accumulate   FP32           FP32     FP32     FP32
//   te-current, te-delayed, rowwise, mxfp8:
//               that FP8 recipe                FP32           FP32     FP32     FP32
//   blockwise   1×128 · 128×128 (DeepSeek-V3)  FP32           FP32     BF16     BF16
//   moss        two-level, predicted W scales  FP32           FP32     BF16     BF16
//   fp8lm-o1    FP8, per-tensor power-of-two   E4M3 scaled    FP16 sc. FP32     FP32
//   fp8lm-o2    as O1                          E4M3 scaled    FP16 sc. E4M3 sc. FP16 sc.
//
// A spec may override the storage of the optimizer's tensors and pass options to the recipe:
// "fp8lm-o2:moment2=e4m3" (the FP8-LM ablation), "moss:group=128".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "numerics/storage_format.h"

namespace octet {

const char* storage_format_name(StorageFormat f);

struct PrecisionPolicy {
    enum class Gemm { fp32, bf16, fp8 };
    std::string name;
    Gemm gemm = Gemm::bf16;
    std::string gemm_recipe; // recipe spec of the linear layers when gemm == fp8
    Gemm lm_head = Gemm::bf16;
    StorageFormat weight_grad = StorageFormat::fp32;
    StorageFormat master = StorageFormat::fp32;
    StorageFormat moment1 = StorageFormat::fp32;
    StorageFormat moment2 = StorageFormat::fp32;

    std::string describe() const;
    // Optimizer-side bytes per parameter: master + gradient + m + v.
    int bytes_per_parameter() const;
    // Whether the FP8 recipe's quantizers plan every step anew (te-delayed: its scale from an
    // amax history read back on the host), so no step can be recorded as a graph.
    bool plans_change_every_step() const;
};

PrecisionPolicy make_policy(std::string_view spec); // throws Error naming the problem
const std::vector<std::string>& policy_names();

} // namespace octet
