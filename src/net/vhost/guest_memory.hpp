#pragma once
// The guest's memory as a vhost-user frontend hands it over (SET_MEM_TABLE):
// up to eight regions, each an fd the switch maps itself. Every address the
// guest writes into a ring goes through translate(), which answers only for
// a range lying wholly inside one region; anything else is the guest's
// mistake (or attack) and yields nullptr, never a wild pointer.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vdtu/mapped_region.hpp"

namespace vdtu::net::vhost {

struct RegionSpec {
  std::uint64_t guest_address = 0;  // guest physical
  std::uint64_t size = 0;
  std::uint64_t user_address = 0;  // the frontend's virtual address (ring addresses use these)
  std::uint64_t mmap_offset = 0;   // where the region starts in the fd
};

class GuestMemory {
 public:
  static constexpr std::size_t kMaxRegions = 8;

  GuestMemory() = default;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  GuestMemory(GuestMemory&&) noexcept = default;
  GuestMemory& operator=(GuestMemory&&) noexcept = default;
  ~GuestMemory() = default;

  // Maps `fd` (shared, read-write). Throws std::invalid_argument for a region
  // that overflows, overlaps another, is larger than its file, or is one too
  // many; std::system_error when mmap fails.
  void add(const RegionSpec& spec, int fd);
  // A region over memory the caller owns (tests and the fuzzer).
  void add_view(const RegionSpec& spec, std::span<std::byte> bytes);

  // Host pointer for [guest_address, +length), or nullptr unless one region
  // holds all of it. length 0 is never valid.
  [[nodiscard]] std::byte* translate(std::uint64_t guest_address, std::uint64_t length) const;
  // The same for the frontend's virtual addresses.
  [[nodiscard]] std::byte* translate_user(std::uint64_t user_address, std::uint64_t length) const;
  [[nodiscard]] bool empty() const { return regions_.empty(); }
  [[nodiscard]] std::size_t region_count() const { return regions_.size(); }

 private:
  struct Region {
    std::uint64_t guest = 0;
    std::uint64_t size = 0;
    std::uint64_t user = 0;
    std::byte* host = nullptr;
    MappedRegion mapping;  // empty for views
  };
  void check(const RegionSpec& spec) const;

  std::vector<Region> regions_;
};

}  // namespace vdtu::net::vhost
