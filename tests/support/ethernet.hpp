#pragma once
// Frames built by tests: Ethernet header (optionally 802.1Q-tagged) and a
// payload whose bytes say which frame it is.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vdtu/net.hpp"

namespace vdtu::testing {

inline net::MacAddress mac(std::uint8_t last) { return {{0x02, 0x00, 0x00, 0x00, 0x00, last}}; }

inline std::vector<std::byte> ethernet_frame(const net::MacAddress& destination,
                                             const net::MacAddress& source, std::size_t payload_bytes = 50,
                                             std::uint8_t fill = 0, int vlan = -1,
                                             std::uint16_t type = 0x0800) {
  std::vector<std::byte> frame;
  auto put8 = [&](unsigned v) { frame.push_back(static_cast<std::byte>(v & 0xffU)); };
  auto put16 = [&](unsigned v) {
    put8(v >> 8U);
    put8(v);
  };
  for (auto o : destination.octets) put8(o);
  for (auto o : source.octets) put8(o);
  if (vlan >= 0) {
    put16(0x8100);
    put16(static_cast<unsigned>(vlan));
  }
  put16(type);
  for (std::size_t i = 0; i < payload_bytes; ++i) put8(fill + i);
  return frame;
}

}  // namespace vdtu::testing
