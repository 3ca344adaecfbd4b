#pragma once
// The traffic generator and sink of `vdtu bench switch` on a (namespaced)
// interface: an AF_PACKET socket with TPACKET_V2 rings both ways, used the
// same way whether a Linux bridge or `vdtu switch` sits between two of them.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "vdtu/mapped_region.hpp"
#include "vdtu/net.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::bench {

class PacketEndpoint {
 public:
  // Opens `interface` of the caller's current network namespace (root).
  explicit PacketEndpoint(const std::string& interface, std::uint32_t ring_frames = 1024);

  [[nodiscard]] const net::MacAddress& mac() const { return mac_; }
  // Puts up to `count` copies of `frame` into the TX ring and kicks the kernel
  // once; returns how many were queued (fewer when the ring is full).
  std::uint32_t send(std::span<const std::byte> frame, std::uint32_t count);
  // Takes every frame waiting in the RX ring; returns how many had `ether_type`.
  std::uint32_t drain(std::uint16_t ether_type);

 private:
  [[nodiscard]] std::byte* rx_frame(std::uint32_t i) const;
  [[nodiscard]] std::byte* tx_frame(std::uint32_t i) const;

  UniqueFd socket_;
  MappedRegion rings_;
  std::uint32_t frames_;
  std::uint32_t frame_size_ = 2048;
  std::uint32_t rx_next_ = 0;
  std::uint32_t tx_next_ = 0;
  net::MacAddress mac_;
};

}  // namespace vdtu::bench
