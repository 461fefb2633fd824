// One model, initialised alike, on the CPU backend and on the GPU backend, with an AdamW each and
// random tokens for 4 sequences: the GPU tests that follow the CPU through training steps.
#pragma once

#include <cstdint>
#include <vector>

#include "common/rng.h"
#include "cpu/cpu_ops.h"
#include "model/gpt.h"
#include "optim/adamw.h"

namespace octet::testing {

struct ModelOnBothBackends {
    static constexpr int64_t batch = 4;
    ModelOnBothBackends(const ModelConfig& c, const PrecisionPolicy& policy, Ops<float>& gpu,
                        uint64_t seed, Rng& rng)
        : cpu_model(c, cpu, policy, seed), gpu_model(c, gpu, policy, seed),
          cpu_opt(cpu, cpu_model.params().tensors(), cpu_model.params().values(), policy, {}),
          gpu_opt(gpu, gpu_model.params().tensors(), gpu_model.params().values(), policy, {}),
          tokens(size_t(batch * c.seq_len + 1)) {
        for (int32_t& t : tokens) t = int32_t(rng.next_u64() % uint64_t(c.vocab_size));
    }
    const int32_t* inputs() const { return tokens.data(); }
    const int32_t* targets() const { return tokens.data() + 1; }

    CpuOps<float> cpu;
    Gpt<float> cpu_model, gpu_model;
    AdamW cpu_opt, gpu_opt;
    std::vector<int32_t> tokens;
};

} // namespace octet::testing
