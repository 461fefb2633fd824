// FlashAttention through cuDNN's SDPA graphs (see flash_attention.h).
#include "cuda/flash_attention.h"

#include <cudnn_frontend.h>

#include "common/error.h"

namespace fe = cudnn_frontend;

#define OCTET_CUDNN_CHECK(call)                                                                    \
    do {                                                                                           \
        const cudnnStatus_t octet_st_ = (call);                                                    \
        if (octet_st_ != CUDNN_STATUS_SUCCESS)                                                     \
            throw ::octet::Error(std::string("cuDNN error ") + cudnnGetErrorString(octet_st_) +    \
                                 " in " #call " at " __FILE__ ":" + std::to_string(__LINE__));     \
    } while (0)

#define OCTET_CUDNN_FE_CHECK(call)                                                                 \
    do {                                                                                           \
        fe::error_t octet_err_ = (call); /* get_message() is not const */                          \
        if (octet_err_.is_bad())                                                                   \
            throw ::octet::Error(std::string("cuDNN frontend error: ") +                           \
                                 octet_err_.get_message() + " in " #call " at " __FILE__ ":" +     \
                                 std::to_string(__LINE__));                                        \
    } while (0)

namespace octet::cuda {

namespace {

using TensorPtr = std::shared_ptr<fe::graph::Tensor_attributes>;

// [B, NH, T, HS] views: `row` elements between tokens, heads HS apart.
std::vector<int64_t> dims(const AttentionShape& a) {
    return {a.batch, a.heads, a.seq, a.head_size};
}
std::vector<int64_t> strides(const AttentionShape& a, int64_t row) {
    return {a.seq * row, a.head_size, row, 1};
}

TensorPtr tensor(fe::graph::Graph& g, const char* name, const AttentionShape& a, int64_t row) {
    return g.tensor(
        fe::graph::Tensor_attributes().set_name(name).set_dim(dims(a)).set_stride(strides(a, row)));
}

TensorPtr stats_tensor(fe::graph::Graph& g, const AttentionShape& a) {
    return g.tensor(fe::graph::Tensor_attributes()
                        .set_name("stats")
                        .set_dim({a.batch, a.heads, a.seq, 1})
                        .set_stride({a.heads * a.seq, a.seq, 1, 1})
                        .set_data_type(fe::DataType_t::FLOAT));
}

} // namespace

struct FlashAttention::Graph {
    fe::graph::Graph graph;
    TensorPtr q, k, v, o, d_o, stats, d_q, d_k, d_v;
    int64_t workspace_bytes = 0;
};

FlashAttention::FlashAttention(Memory& memory) : workspace_(memory) {
    cudnnHandle_t h = nullptr;
    OCTET_CUDNN_CHECK(cudnnCreate(&h));
    handle_ = h;
}

FlashAttention::~FlashAttention() {
    graphs_.clear();
    if (handle_) cudnnDestroy(static_cast<cudnnHandle_t>(handle_));
}

FlashAttention::Graph& FlashAttention::graph(const AttentionShape& a, bool backward) {
    const auto key = std::make_tuple(a.batch, a.seq, a.heads, a.head_size, backward);
    auto it = graphs_.find(key);
    if (it != graphs_.end()) return *it->second;
    auto g = std::make_unique<Graph>();
    fe::graph::Graph& graph = g->graph;
    graph.set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    const int64_t c = a.heads * a.head_size;
    const float scale = float(1.0 / std::sqrt(double(a.head_size)));
    g->q = tensor(graph, "q", a, 3 * c);
    g->k = tensor(graph, "k", a, 3 * c);
    g->v = tensor(graph, "v", a, 3 * c);
    if (!backward) {
        auto options = fe::graph::SDPA_attributes()
                           .set_name("attention")
                           .set_generate_stats(true)
                           .set_causal_mask(true)
                           .set_attn_scale(scale);
        auto [o, stats] = graph.sdpa(g->q, g->k, g->v, options);
        g->o = o;
        g->stats = stats;
        o->set_output(true).set_dim(dims(a)).set_stride(strides(a, c));
        stats->set_output(true).set_data_type(fe::DataType_t::FLOAT);
    } else {
        g->o = tensor(graph, "o", a, c);
        g->d_o = tensor(graph, "d_o", a, c);
        g->stats = stats_tensor(graph, a);
        auto options = fe::graph::SDPA_backward_attributes()
                           .set_name("attention_backward")
                           .set_deterministic_algorithm(true) // no atomics: reproducible runs
                           .set_causal_mask(true)
                           .set_attn_scale(scale);
        auto [d_q, d_k, d_v] =
            graph.sdpa_backward(g->q, g->k, g->v, g->o, g->d_o, g->stats, options);
        g->d_q = d_q;
        g->d_k = d_k;
        g->d_v = d_v;
        for (const TensorPtr& t : {d_q, d_k, d_v})
            t->set_output(true).set_dim(dims(a)).set_stride(strides(a, 3 * c));
    }
    const auto h = static_cast<cudnnHandle_t>(handle_);
    OCTET_CUDNN_FE_CHECK(graph.validate());
    OCTET_CUDNN_FE_CHECK(graph.build_operation_graph(h));
    OCTET_CUDNN_FE_CHECK(graph.create_execution_plans({fe::HeurMode_t::A}));
    OCTET_CUDNN_FE_CHECK(graph.check_support(h));
    OCTET_CUDNN_FE_CHECK(graph.build_plans(h));
    OCTET_CUDNN_FE_CHECK(graph.get_workspace_size(g->workspace_bytes));
    return *graphs_.emplace(key, std::move(g)).first->second;
}

void* FlashAttention::workspace(int64_t bytes) {
    if (workspace_.size() < bytes) workspace_.resize(bytes);
    return workspace_.data();
}

void FlashAttention::forward(const AttentionShape& a, const __nv_bfloat16* qkv, __nv_bfloat16* out,
                             float* stats, cudaStream_t stream) {
    Graph& g = graph(a, false);
    const int64_t c = a.heads * a.head_size;
    auto* base = const_cast<__nv_bfloat16*>(qkv); // cuDNN's variant pack takes void*
    std::unordered_map<TensorPtr, void*> pack = {
        {g.q, base}, {g.k, base + c}, {g.v, base + 2 * c}, {g.o, out}, {g.stats, stats}};
    const auto h = static_cast<cudnnHandle_t>(handle_);
    OCTET_CUDNN_CHECK(cudnnSetStream(h, stream));
    OCTET_CUDNN_FE_CHECK(g.graph.execute(h, pack, workspace(g.workspace_bytes)));
}

void FlashAttention::backward(const AttentionShape& a, const __nv_bfloat16* qkv,
                              const __nv_bfloat16* out, const __nv_bfloat16* d_out,
                              const float* stats, __nv_bfloat16* d_qkv, cudaStream_t stream) {
    Graph& g = graph(a, true);
    const int64_t c = a.heads * a.head_size;
    auto* base = const_cast<__nv_bfloat16*>(qkv);
    std::unordered_map<TensorPtr, void*> pack = {{g.q, base},
                                                 {g.k, base + c},
                                                 {g.v, base + 2 * c},
                                                 {g.o, const_cast<__nv_bfloat16*>(out)},
                                                 {g.d_o, const_cast<__nv_bfloat16*>(d_out)},
                                                 {g.stats, const_cast<float*>(stats)},
                                                 {g.d_q, d_qkv},
                                                 {g.d_k, d_qkv + c},
                                                 {g.d_v, d_qkv + 2 * c}};
    const auto h = static_cast<cudnnHandle_t>(handle_);
    OCTET_CUDNN_CHECK(cudnnSetStream(h, stream));
    OCTET_CUDNN_FE_CHECK(g.graph.execute(h, pack, workspace(g.workspace_bytes)));
}

} // namespace octet::cuda
