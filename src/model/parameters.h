// All parameters of a model in one flat buffer, with a gradient buffer of the same layout and a
// table of named tensors (offset, shape, whether AdamW decays it). One buffer lets the optimizer
// and checkpoints walk every parameter in one pass.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

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
    void allocate() {
        values_.assign(size_t(total_), T(0));
        grads_.assign(size_t(total_), T(0));
    }
    const std::vector<ParamTensor>& tensors() const { return tensors_; }
    int64_t size() const { return total_; }
    T* value(size_t i) { return values_.data() + tensors_[i].offset; }
    T* grad(size_t i) { return grads_.data() + tensors_[i].offset; }
    T* values() { return values_.data(); }
    T* grads() { return grads_.data(); }
    void zero_grads() { std::fill(grads_.begin(), grads_.end(), T(0)); }

  private:
    std::vector<ParamTensor> tensors_;
    std::vector<T> values_, grads_;
    int64_t total_ = 0;
};

} // namespace octet
