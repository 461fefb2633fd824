// Memory of a backend: where the ops' pointers live. The CPU backend's memory is the host's; the
// CUDA backend's is the GPU's, reached from the host only by explicit copies. Models, optimizers
// and checkpoints allocate through it, so one model code runs on either backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace octet {

class Memory {
  public:
    virtual ~Memory() = default;
    // Whether the host may dereference this memory's pointers.
    virtual bool host_accessible() const = 0;
    virtual void* allocate(size_t bytes) = 0;
    virtual void release(void* p) noexcept = 0;
    virtual void zero(void* p, size_t bytes) = 0;
    virtual void copy(void* dst, const void* src, size_t bytes) = 0; // both in this memory
    virtual void to_host(void* host_dst, const void* src, size_t bytes) = 0;
    virtual void from_host(void* dst, const void* host_src, size_t bytes) = 0;
    // The bytes held now, and the most held at once so far (0 where untracked: the host's).
    virtual size_t held_bytes() const = 0;
    virtual size_t peak_bytes() const = 0;
    // Changes with every allocation and release: a recorded graph (Ops::record()) whose buffers
    // may have moved since is recorded again. Constant where nothing records (the host).
    virtual uint64_t layout_version() const { return 0; }
};

// The host's memory (64-byte aligned allocations).
Memory& host_memory();

// An array of T in a Memory, owned. Contents are unspecified after a resize that grows it.
template <typename T>
class Buffer {
  public:
    explicit Buffer(Memory& memory) : memory_(&memory) {}
    Buffer(Memory& memory, int64_t n) : memory_(&memory) { resize(n); }
    ~Buffer() { memory_->release(data_); }
    Buffer(Buffer&& o) noexcept
        : memory_(o.memory_), data_(std::exchange(o.data_, nullptr)),
          size_(std::exchange(o.size_, 0)), capacity_(std::exchange(o.capacity_, 0)) {}
    Buffer& operator=(Buffer&& o) noexcept {
        std::swap(memory_, o.memory_);
        std::swap(data_, o.data_);
        std::swap(size_, o.size_);
        std::swap(capacity_, o.capacity_);
        return *this;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    void resize(int64_t n) {
        if (n > capacity_) {
            memory_->release(data_);
            data_ = nullptr;
            size_ = capacity_ = 0; // stays valid if the allocation throws
            data_ = static_cast<T*>(memory_->allocate(size_t(n) * sizeof(T)));
            capacity_ = n;
        }
        size_ = n;
    }
    void zero() { memory_->zero(data_, bytes()); }
    T* data() { return data_; }
    const T* data() const { return data_; }
    int64_t size() const { return size_; }
    size_t bytes() const { return size_t(size_) * sizeof(T); }
    bool empty() const { return size_ == 0; }
    Memory& memory() const { return *memory_; }

    // Copies between this buffer and the host; upload() resizes to n first.
    std::vector<T> download() const {
        std::vector<T> out(static_cast<size_t>(size_));
        memory_->to_host(out.data(), data_, bytes());
        return out;
    }
    void upload(const T* host, int64_t n) {
        resize(n);
        memory_->from_host(data_, host, bytes());
    }
    void copy_from(const Buffer& other) {
        resize(other.size());
        memory_->copy(data_, other.data_, bytes());
    }

  private:
    Memory* memory_;
    T* data_ = nullptr;
    int64_t size_ = 0, capacity_ = 0;
};

} // namespace octet
