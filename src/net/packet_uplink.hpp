#pragma once
// A port on a host interface: a promiscuous AF_PACKET socket with
// memory-mapped TPACKET_V2 rings, one for frames in and one for frames out,
// so no frame costs a system call (one send() kicks a whole burst out).
//
// Why V2 and not V3: V3 hands frames over a block at a time, when a block is
// full or its timer (>= 1 ms) runs out, which puts milliseconds into an idle
// link's latency; V2 hands over each frame as it lands.
//
// Offloads: with PACKET_VNET_HDR the kernel says per frame whether its
// checksum was left to "hardware" (a sender on this host with checksum
// offload, e.g. the far end of a veth); the uplink completes it in software.
// Frames merged by GSO/GRO larger than a ring frame arrive truncated: they
// are dropped and counted as unusable, so a veth's far end should send with
// TSO/GSO off (`ethtool -K IF tso off gso off`); the switch turns GRO off
// on its own interface. See docs/ARCHITECTURE.md.

#include <cstdint>
#include <string>

#include "port.hpp"
#include "vdtu/mapped_region.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::net {

class PacketUplink final : public Port {
 public:
  // Opens `interface` (needs CAP_NET_RAW). `mtu` 0 takes the interface's;
  // more than the interface's is refused. Throws std::system_error or
  // std::invalid_argument naming the interface.
  PacketUplink(const std::string& interface, std::uint32_t mtu, std::uint32_t ring_frames);

  [[nodiscard]] std::uint32_t mtu() const { return mtu_; }

  [[nodiscard]] PortKind kind() const override { return PortKind::kUplink; }
  [[nodiscard]] std::string peer() const override { return interface_; }
  std::uint32_t receive_burst(std::span<ReceivedFrame> out) override;
  void release_received() override;
  std::uint32_t transmit_burst(std::span<const ReceivedFrame* const> frames) override;
  [[nodiscard]] int wakeup_fd() const override { return socket_.get(); }
  bool arm_wakeup() override;
  void disarm_wakeup() override {}
  void refresh_counters() override;  // the kernel's drops on a full receive ring

 private:
  [[nodiscard]] std::byte* rx_frame(std::uint32_t index) const;
  [[nodiscard]] std::byte* tx_frame(std::uint32_t index) const;
  // Checks one received frame and completes its checksum; false: drop it.
  bool usable(std::byte* frame, std::uint16_t& offset, std::uint16_t& length);
  void kick();

  std::string interface_;
  std::uint32_t mtu_ = 0;
  std::uint32_t frame_size_ = 0;
  std::uint32_t frames_ = 0;  // per ring
  UniqueFd socket_;
  MappedRegion rings_;  // RX ring, then TX ring
  std::uint32_t rx_next_ = 0;
  std::uint32_t rx_taken_ = 0;
  std::uint32_t tx_next_ = 0;
};

}  // namespace vdtu::net
