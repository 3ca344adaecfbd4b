#pragma once
// A capability's global id: who created it and what it is (SemperOS's DDL
// key: PE, VPE, type) and an object number that the creating kernel never
// hands out twice.
//
// The object number is the kernel's own 64-bit counter. With 24 bits (the
// old layout) a VPE could loop CREATEGATE/REVOKE until a fresh capability
// got the id of a delegated one, and a revocation then missed the delegated
// copy. 2^64 creations at one per nanosecond take 584 years; the kernel
// still refuses to create capabilities once the counter nears its end
// (Kernel::ids_left), so it never wraps.

#include <compare>
#include <cstdint>
#include <functional>
#include <string_view>
#include <type_traits>

#include "vdtu/dtu_types.hpp"

namespace vdtu::kernel {

enum class CapType : std::uint8_t { kVpe = 1, kMemory = 2, kSendGate = 3, kService = 4, kSession = 5 };
std::string_view to_string(CapType t);

// 16 bytes without padding: it travels in kernelcalls as it is. The PE
// locates the owning kernel with one membership lookup.
struct CapId {
  PeId pe = 0;
  VpeId vpe = 0;
  CapType type{};
  std::uint8_t reserved[3] = {};  // zero in every id a kernel makes
  std::uint64_t object = 0;       // 1, 2, 3 ... per kernel; 0: no capability

  [[nodiscard]] constexpr bool is_null() const { return object == 0; }
  friend constexpr bool operator==(const CapId&, const CapId&) = default;
  friend constexpr auto operator<=>(const CapId&, const CapId&) = default;
};

static_assert(sizeof(CapId) == 16 && std::has_unique_object_representations_v<CapId>,
              "no padding: the layout is part of the kernelcall wire format");

inline constexpr CapId kNoCap{};

constexpr CapId make_cap_id(PeId pe, VpeId vpe, CapType type, std::uint64_t object) {
  return CapId{pe, vpe, type, {}, object};
}
constexpr PeId pe_of(const CapId& id) { return id.pe; }
constexpr VpeId vpe_of(const CapId& id) { return id.vpe; }
constexpr CapType type_of(const CapId& id) { return id.type; }
constexpr CapId with_type(CapId id, CapType type) {
  id.type = type;
  return id;
}

// Makes the ids of one kernel: object numbers 1, 2, 3 ... never one twice.
// Whoever creates capabilities checks has_room_for first.
class CapIdAllocator {
 public:
  [[nodiscard]] bool has_room_for(std::uint64_t count) const { return next_ <= kLast - count; }
  CapId next(PeId pe, VpeId vpe, CapType type) { return make_cap_id(pe, vpe, type, next_++); }
  // Tests: as if `count` capabilities had been created meanwhile, to reach
  // 2^24 or 2^32 without that many creations. Never backwards.
  void skip(std::uint64_t count) { next_ = count > kLast - next_ ? kLast : next_ + count; }
  [[nodiscard]] std::uint64_t next_object() const { return next_; }

 private:
  static constexpr std::uint64_t kLast = ~std::uint64_t{0};
  std::uint64_t next_ = 1;
};

}  // namespace vdtu::kernel

template <>
struct std::hash<vdtu::kernel::CapId> {
  std::size_t operator()(const vdtu::kernel::CapId& id) const noexcept {
    // The object numbers of one kernel are dense; the origin spreads kernels.
    const std::uint64_t origin = (std::uint64_t{id.pe} << 48U) | (std::uint64_t{id.vpe} << 32U) |
                                 (std::uint64_t{static_cast<std::uint8_t>(id.type)} << 24U);
    std::uint64_t h = id.object ^ (origin * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 29U;
    return static_cast<std::size_t>(h);
  }
};
