// The host's memory (ops/memory.h).
#include <cstring>
#include <new>

#include "ops/memory.h"

namespace octet {
namespace {

constexpr std::align_val_t host_alignment{64};

class HostMemory final : public Memory {
  public:
    bool host_accessible() const override { return true; }
    void* allocate(size_t bytes) override { return ::operator new(bytes, host_alignment); }
    void release(void* p) noexcept override {
        if (p) ::operator delete(p, host_alignment);
    }
    void zero(void* p, size_t bytes) override {
        if (bytes) std::memset(p, 0, bytes);
    }
    void copy(void* dst, const void* src, size_t bytes) override {
        if (bytes) std::memcpy(dst, src, bytes);
    }
    void to_host(void* dst, const void* src, size_t bytes) override { copy(dst, src, bytes); }
    void from_host(void* dst, const void* src, size_t bytes) override { copy(dst, src, bytes); }
    size_t held_bytes() const override { return 0; }
    size_t peak_bytes() const override { return 0; }
};

} // namespace

Memory& host_memory() {
    static HostMemory memory;
    return memory;
}

} // namespace octet
