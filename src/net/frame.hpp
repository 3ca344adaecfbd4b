#pragma once
// A frame as the forwarding engine sees it: where it lies in a port's memory,
// plus a private copy of its first bytes. The peer may still change its
// memory; the switch decides on the private copy and sends that copy on, so
// what it checked (addresses, VLAN tag) is what leaves it.

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vdtu/net.hpp"

namespace vdtu::net {

// Destination, source, an 802.1Q tag and the type after it.
inline constexpr std::size_t kFrameHeadBytes = kEthernetHeaderBytes + kVlanTagBytes;
inline constexpr std::uint16_t kEtherTypeVlan = 0x8100;

struct ReceivedFrame {
  std::array<std::byte, kFrameHeadBytes> head{};
  const std::byte* data = nullptr;
  std::uint16_t length = 0;

  void capture(const std::byte* bytes, std::uint16_t size) {
    data = bytes;
    length = size;
    std::memcpy(head.data(), bytes, std::min<std::size_t>(size, kFrameHeadBytes));
  }
};

// Writes the frame to `out` (room for f.length bytes): head from the private copy.
inline void copy_frame(const ReceivedFrame& f, std::byte* out) {
  const std::size_t head = std::min<std::size_t>(f.length, kFrameHeadBytes);
  std::memcpy(out, f.head.data(), head);
  std::memcpy(out + head, f.data + head, f.length - head);
}

// What the engine reads from the head. Addresses as 48-bit integers (first
// octet most significant), as the MAC table keys them.
struct EthernetHeader {
  std::uint64_t destination = 0;
  std::uint64_t source = 0;
  std::uint16_t vlan = 0;  // 0: untagged (or priority-tagged)
  bool tagged = false;
};

// A group address (broadcast included): the lowest bit of the first octet.
constexpr bool is_group_address(std::uint64_t mac) { return ((mac >> 40U) & 1U) != 0; }

// Six big-endian octets at `at` (the head has room for eight).
inline std::uint64_t load_mac(const std::byte* at) {
  std::uint64_t raw = 0;
  std::memcpy(&raw, at, sizeof(raw));
  if constexpr (std::endian::native == std::endian::little) raw = __builtin_bswap64(raw);
  return raw >> 16U;
}

// Needs f.length >= kEthernetHeaderBytes.
inline EthernetHeader parse_head(const ReceivedFrame& f) {
  EthernetHeader h;
  h.destination = load_mac(f.head.data());
  h.source = load_mac(f.head.data() + 6);
  const auto type = static_cast<std::uint16_t>((std::to_integer<unsigned>(f.head[12]) << 8U) |
                                               std::to_integer<unsigned>(f.head[13]));
  if (type == kEtherTypeVlan && f.length >= kFrameHeadBytes) {
    h.tagged = true;
    h.vlan = static_cast<std::uint16_t>(
        ((std::to_integer<unsigned>(f.head[14]) << 8U) | std::to_integer<unsigned>(f.head[15])) & 0xfffU);
  }
  return h;
}

}  // namespace vdtu::net
