#pragma once
// A switch port that is a virtio-net device for a vhost-user frontend (QEMU,
// DPDK's virtio-user): the frontend hands over the guest's memory and rings
// on a Unix stream socket, and the switch moves frames in and out of the
// guest's buffers itself, in its one forwarding loop.
//   queue 0 (receive): switch -> guest, the guest's device-writable buffers
//   queue 1 (transmit): guest -> switch
// Offered: VERSION_1, MAC, STATUS, MRG_RXBUF, EVENT_IDX, PROTOCOL_FEATURES;
// protocol features REPLY_ACK and STATUS. Every message and every ring word
// is checked (see split_ring.hpp); a frontend that breaks the protocol fails
// the port as misbehaved, one that hangs up fails it as gone.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../port.hpp"
#include "guest_memory.hpp"
#include "message.hpp"
#include "split_ring.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::net::vhost {

inline constexpr std::uint64_t kFeatureMac = 1ULL << 5U;
inline constexpr std::uint64_t kFeatureMergeableBuffers = 1ULL << 15U;
inline constexpr std::uint64_t kFeatureStatus = 1ULL << 16U;
inline constexpr std::uint64_t kFeatureEventIndex = 1ULL << 29U;
inline constexpr std::uint64_t kFeatureProtocolFeatures = 1ULL << 30U;
inline constexpr std::uint64_t kFeatureVersion1 = 1ULL << 32U;
inline constexpr std::uint64_t kOfferedFeatures = kFeatureMac | kFeatureMergeableBuffers | kFeatureStatus |
                                                  kFeatureEventIndex | kFeatureProtocolFeatures |
                                                  kFeatureVersion1;
inline constexpr std::uint64_t kProtocolReplyAck = 1ULL << 3U;
inline constexpr std::uint64_t kProtocolStatus = 1ULL << 16U;
inline constexpr std::uint64_t kOfferedProtocolFeatures = kProtocolReplyAck | kProtocolStatus;

class VhostUserPort final : public Port {
 public:
  // `connection`: the frontend's stream socket (made non-blocking here).
  VhostUserPort(UniqueFd connection, std::uint32_t mtu, std::string peer);

  [[nodiscard]] int control_fd() const { return connection_.get(); }
  // Reads and answers every message waiting on the socket.
  void serve_control();
  // Both rings running (for tests and the log).
  [[nodiscard]] bool running() const { return queues_[0].ring && queues_[1].ring; }

  [[nodiscard]] PortKind kind() const override { return PortKind::kVhostUser; }
  [[nodiscard]] std::string peer() const override { return peer_; }
  std::uint32_t receive_burst(std::span<ReceivedFrame> out) override;
  void release_received() override;
  std::uint32_t transmit_burst(std::span<const ReceivedFrame* const> frames) override;
  [[nodiscard]] int wakeup_fd() const override { return wakeup_.get(); }
  bool arm_wakeup() override;
  void disarm_wakeup() override;

 private:
  struct Queue {
    std::uint32_t entries = 0;
    std::uint64_t descriptors = 0;  // frontend virtual addresses
    std::uint64_t used = 0;
    std::uint64_t available = 0;
    bool has_addresses = false;
    std::uint16_t base = 0;  // where to resume (SET_VRING_BASE)
    UniqueFd kick;
    UniqueFd call;
    bool kicked = false;  // SET_VRING_KICK seen (with or without an fd)
    bool enabled = false;
    std::optional<SplitRing> ring;  // running
  };

  bool handle(const Message& m);  // false: the frontend broke the protocol (failure set)
  bool handle_mem_table(const Message& m);
  bool handle_ring_fd(const Message& m, Request r);
  void stop(Queue& q);
  void refresh();  // (re)starts rings that became ready, with current memory and features
  bool violation(std::string reason);
  void notify(Queue& q);
  void reset();
  [[nodiscard]] std::uint32_t header_bytes() const;

  UniqueFd connection_;
  UniqueFd wakeup_;  // an epoll set holding the transmit queue's kick fd: a stable fd for the switch
  std::string peer_;
  std::uint32_t mtu_;
  MessageReader reader_;
  Message message_;
  GuestMemory memory_;
  std::array<Queue, 2> queues_;
  std::uint64_t features_ = 0;
  std::uint64_t protocol_features_ = 0;
  std::uint64_t status_ = 0;
  bool features_set_ = false;

  // Receive path state (frames from the guest, valid until release_received).
  std::vector<Segment> segments_;
  std::vector<std::vector<std::byte>> bounce_;  // for frames scattered over descriptors
  std::vector<std::uint16_t> taken_;
};

}  // namespace vdtu::net::vhost
