#include "memory_allocator.hpp"

namespace vdtu::kernel {

MemoryAllocator::MemoryAllocator(std::uint64_t size, std::uint64_t base) {
  if (size > 0) free_[base] = size;
}

std::optional<std::uint64_t> MemoryAllocator::allocate(std::uint64_t size) {
  if (size == 0 || size > (std::uint64_t{1} << 40U)) return std::nullopt;
  const std::uint64_t rounded = (size + kAlign - 1) / kAlign * kAlign;
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < rounded) continue;
    const auto offset = it->first;
    const auto rest = it->second - rounded;
    free_.erase(it);
    if (rest > 0) free_[offset + rounded] = rest;
    return offset;
  }
  return std::nullopt;
}

void MemoryAllocator::release(std::uint64_t offset, std::uint64_t size) {
  std::uint64_t rounded = (size + kAlign - 1) / kAlign * kAlign;
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && offset + rounded == next->first) {
    rounded += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      prev->second += rounded;
      return;
    }
  }
  free_[offset] = rounded;
}

std::uint64_t MemoryAllocator::free_bytes() const {
  std::uint64_t total = 0;
  for (const auto& [offset, size] : free_) total += size;
  return total;
}

}  // namespace vdtu::kernel
