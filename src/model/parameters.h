// All parameters of a model in one flat buffer, with a gradient buffer of the same layout and a
// table of named tensors (offset, shape, whether AdamW decays it). One buffer lets the optimizer
// and checkpoints walk every parameter in one pass.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "ops/memory.h"

namespace octet {

struct ParamTensor {
    std::string name;
    std::vector<int64_t> shape;
    int64_t offset = 0;
    int64_t numel = 0;
    bool decay = false; // matrices and embeddings decay; norms and biases do not (nanoGPT)
};

template <typename T>
class ParameterSet {
  public:
    // Registers a tensor; returns its index. Call before allocate().
    size_t add(std::string name, std::vector<int64_t> shape, bool decay) {
        ParamTensor t{std::move(name), std::move(shape), total_, 1, decay};
        for (int64_t d : t.shape) t.numel *= d;
        total_ += t.numel;
        tensors_.push_back(std::move(t));
        return tensors_.size() - 1;
    }
    // Allocates values and gradients in `memory`, the values set from `initial` (total() host
    // values), the gradients zero.
    void allocate(Memory& memory, const std::vector<T>& initial) {
        values_ = std::make_unique<Buffer<T>>(memory);
        grads_ = std::make_unique<Buffer<T>>(memory, total_);
        upload_values(initial);
        grads_->zero();
    }
    const std::vector<ParamTensor>& tensors() const { return tensors_; }
    int64_t size() const { return total_; }
    T* value(size_t i) { return values_->data() + tensors_[i].offset; }
    T* grad(size_t i) { return grads_->data() + tensors_[i].offset; }
    // In the backend's memory (host-dereferenceable only on the CPU backend).
    T* values() { return values_->data(); }
    T* grads() { return grads_->data(); }
    void zero_grads() { grads_->zero(); }
    // Host copies, for checkpoints and exports on any backend.
    std::vector<T> download_values() const { return values_->download(); }
    std::vector<T> download_grads() const { return grads_->download(); }
    void upload_values(const std::vector<T>& host) {
        if (int64_t(host.size()) != total_)
            throw Error("parameters: " + std::to_string(host.size()) + " values given for " +
                        std::to_string(total_));
        values_->upload(host.data(), total_);
    }

  private:
    std::vector<ParamTensor> tensors_;
    std::unique_ptr<Buffer<T>> values_, grads_;
    int64_t total_ = 0;
};

} // namespace octet
