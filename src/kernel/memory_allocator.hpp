#pragma once
// First-fit allocator for the node's global memory (REQMEM), with merging of
// freed neighbours. Offsets only; the memory itself belongs to the node.

#include <cstdint>
#include <map>
#include <optional>

namespace vdtu::kernel {

class MemoryAllocator {
 public:
  // Hands out [base, base + size): several kernels share a node's memory.
  explicit MemoryAllocator(std::uint64_t size, std::uint64_t base = 0);
  std::optional<std::uint64_t> allocate(std::uint64_t size);
  void release(std::uint64_t offset, std::uint64_t size);
  [[nodiscard]] std::uint64_t free_bytes() const;

 private:
  static constexpr std::uint64_t kAlign = 64;
  std::map<std::uint64_t, std::uint64_t> free_;  // offset -> size
};

}  // namespace vdtu::kernel
