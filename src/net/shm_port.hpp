#pragma once
// The switch's side of a shared-memory port: two vdtu channels that the
// switch creates, one frame per message, whose fds the client receives.
//   to_switch:   client produces, switch consumes (eventfd: wakes the switch)
//   from_switch: switch produces, client consumes
// The channel keeps each side's geometry private and checks every index and
// length the client writes; a violation makes this port fail as misbehaved.

#include <array>
#include <string>

#include "port.hpp"
#include "vdtu/channel.hpp"

namespace vdtu::net {

class ShmPort final : public Port {
 public:
  // Rings of `ring_slots` frames each way, slots large enough for the MTU.
  // `control` is the client's connection (kept so it closes with the port).
  // Throws std::invalid_argument for a bad MTU or ring size.
  ShmPort(std::uint32_t mtu, std::uint32_t ring_slots, UniqueFd control, std::string peer);
  // Ends both rings, so a client waiting on them learns the port is gone.
  ~ShmPort() override;

  static ChannelGeometry geometry_for(std::uint32_t mtu, std::uint32_t ring_slots);
  [[nodiscard]] const ChannelGeometry& geometry() const { return to_switch_.geometry(); }
  // to-switch memfd and eventfd, from-switch memfd and eventfd: what the client gets.
  [[nodiscard]] std::array<int, 4> client_fds() const;
  [[nodiscard]] int control_fd() const { return control_.get(); }
  // The client's connection closed: frames it queued are still forwarded,
  // then the port reports that its peer left.
  void peer_left() { peer_left_ = true; }

  [[nodiscard]] PortKind kind() const override { return PortKind::kSharedMemory; }
  [[nodiscard]] std::string peer() const override { return peer_; }
  std::uint32_t receive_burst(std::span<ReceivedFrame> out) override;
  void release_received() override;
  std::uint32_t transmit_burst(std::span<const ReceivedFrame* const> frames) override;
  [[nodiscard]] int wakeup_fd() const override { return to_switch_.eventfd(); }
  bool arm_wakeup() override;
  void disarm_wakeup() override { receiver_.disarm_event(); }

 private:
  void fail_on(Status st, const char* ring, std::string_view broken_reason);

  SharedChannel to_switch_;
  SharedChannel from_switch_;
  Consumer receiver_;  // on to_switch_
  Producer sender_;    // on from_switch_
  UniqueFd control_;
  std::string peer_;
  std::uint32_t fetched_ = 0;
  bool peer_left_ = false;
};

}  // namespace vdtu::net
