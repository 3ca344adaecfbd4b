#pragma once

#include <cstddef>
#include <utility>

namespace vdtu {

// Sole owner of a shared mmap()ed region; unmaps it on destruction.
class MappedRegion {
 public:
  MappedRegion() = default;
  // Maps `size` bytes of `fd` read-write and shared. Throws std::system_error.
  MappedRegion(int fd, std::size_t size);
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  MappedRegion(MappedRegion&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedRegion& operator=(MappedRegion&& other) noexcept;
  ~MappedRegion();

  [[nodiscard]] std::byte* data() const { return base_; }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace vdtu
