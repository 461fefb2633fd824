// AdamW with decoupled weight decay and global-norm gradient clipping, in the storage the
// precision policy names (numerics/storage_format.h):
//   FP32 master, m, v (16 bytes per parameter with the FP32 gradient), or
//   FP32 master, BF16 m and v (DeepSeek-V3's; the blockwise and moss policies: 12 bytes), or
//   FP8-LM's precision-decoupled storage: FP16 scaled master, E4M3 scaled m, FP16 scaled v and
//   E4M3 weight gradients (6 bytes per parameter; O1 keeps m and v in FP32: 11 bytes).
// The update runs in FP32 on the decoded values (ops/adamw_update.h, PyTorch's order):
// w ← w·(1 − lr·wd), then w ← w − lr · m̂ / (√v̂ + ε). Parameters without `decay` (norms, biases)
// are not decayed. Both storages live in the backend's memory and step there: Ops::adamw_step and
// Ops::adamw_step_scaled, multi-tensor kernels on the GPU.
#pragma once

#include <memory>
#include <vector>

#include "model/parameters.h"
#include "ops/ops.h"
#include "recipe/policy.h"
#include "recipe/recipe.h"

namespace octet {

struct AdamWConfig {
    double beta1 = 0.9;
    double beta2 = 0.95;
    double eps = 1e-8;
    double weight_decay = 0.1;
    double grad_clip = 1.0; // max global gradient norm; 0 disables clipping
};

class AdamW {
  public:
    // `params` are the model's initial weights in the memory of `ops`; with a non-FP32 master
    // they are replaced by the master's representable values, so the model starts from what the
    // optimizer holds.
    AdamW(Ops<float>& ops, const std::vector<ParamTensor>& tensors, float* params,
          const PrecisionPolicy& policy, AdamWConfig config);

    // One update with learning rate lr. Rounds the gradients to the policy's weight-gradient
    // format first (in place), then clips. Returns the global gradient norm before clipping.
    double step(float* params, float* grads, double lr) {
        prepare(lr);
        enqueue(params, grads);
        return grad_norm();
    }
    // step() in parts, for a step recorded once and replayed (Ops::record()): prepare() counts
    // the step and puts its hyperparameters in the backend's memory (no op is recorded there);
    // enqueue() issues the update, reading them there; grad_norm() reads the norm back after it
    // ran.
    void prepare(double lr);
    void enqueue(float* params, float* grads);
    double grad_norm() const;

    // The prepared step's hyperparameters, in the backend's memory, for ops that follow the
    // update (Ops::advance_weight_bounds); nullptr before the first prepare().
    const AdamWHyper* hyper() const { return hyper_.empty() ? nullptr : hyper_.data(); }
    int64_t steps() const { return t_; }
    // What the last step tells weight quantizers (MOSS): lr, betas, weight decay, index, how
    // the moments are stored.
    OptimizerStep last_step() const { return last_; }
    // Bytes the optimizer side holds per parameter: master + gradient + m + v.
    double bytes_per_parameter() const;

    // The moments (decoded to FP32) and the step count, for checkpoints; the master weights are
    // the parameters themselves. import_state() re-encodes them in the policy's storage, which
    // gives back the same values.
    struct Moments {
        std::vector<float> m, v; // in the parameters' layout
        int64_t step = 0;
    };
    Moments export_state() const;
    // `params` are the restored weights: a non-FP32 master is re-stored from them.
    void import_state(const Moments& state, const float* params);

  private:
    // One optimizer tensor in the parameters' layout, with a scale per parameter tensor.
    struct Stored {
        Stored(Memory& memory, StorageFormat f, int64_t total, size_t tensors);
        ScaledTensors view() { return {format, codes.data(), scale_inv.data()}; }
        StorageFormat format;
        Buffer<uint8_t> codes;
        Buffer<float> scale_inv;
    };

    Ops<float>& ops_;
    // FP32 master and gradients, FP32 or BF16 moments: Ops::adamw_step; else adamw_step_scaled.
    bool plain_step_;
    MomentRounding moments_; // how m and v are stored, for MOSS's bound
    std::vector<TensorSpan> spans_;
    int64_t total_ = 0;
    // FP32 storage: m and v as floats. Scaled storage (FP8-LM): master_ (unused with an FP32
    // master), m_ and v_ as codes.
    std::unique_ptr<Stored> master_, m_, v_;
    ScaledAdamWState scaled_state();
    PrecisionPolicy policy_;
    AdamWConfig config_;
    int64_t t_ = 0;
    OptimizerStep last_;
    Buffer<AdamWHyper> hyper_; // the prepared step's
    Buffer<double> norm_;      // the last update's [norm, clipping factor]
};

} // namespace octet
