// Causal flash attention in BF16 through cuDNN's fused SDPA (cudnn-frontend graphs, one forward
// and one backward graph built and cached per shape). The probabilities are never stored: the
// forward keeps the log-sum-exp statistics per row and its output, the backward recomputes.
// Layouts: qkv packed token-major [B, T, 3, NH, HS] (as the QKV projection writes it), out and
// d_out [B, T, NH, HS], stats [B, NH, T] FP32; d_qkv like qkv.
#pragma once

#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <map>
#include <memory>
#include <tuple>

#include "ops/memory.h"
#include "ops/ops.h"

namespace octet::cuda {

class FlashAttention {
  public:
    explicit FlashAttention(Memory& memory); // for the workspace
    ~FlashAttention();
    FlashAttention(const FlashAttention&) = delete;
    FlashAttention& operator=(const FlashAttention&) = delete;

    void forward(const AttentionShape& a, const __nv_bfloat16* qkv, __nv_bfloat16* out,
                 float* stats, cudaStream_t stream);
    void backward(const AttentionShape& a, const __nv_bfloat16* qkv, const __nv_bfloat16* out,
                  const __nv_bfloat16* d_out, const float* stats, __nv_bfloat16* d_qkv,
                  cudaStream_t stream);

  private:
    struct Graph;
    Graph& graph(const AttentionShape& a, bool backward);
    void* workspace(int64_t bytes);

    void* handle_ = nullptr; // cudnnHandle_t
    std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, bool>, std::unique_ptr<Graph>> graphs_;
    Buffer<uint8_t> workspace_;
};

} // namespace octet::cuda
