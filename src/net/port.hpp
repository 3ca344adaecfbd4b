#pragma once
// One port of the switch. Every kind (shared-memory, AF_PACKET uplink, and
// vhost-user next) moves frames in bursts, never blocks, offers an fd for
// epoll, counts, and reports a peer that broke its protocol instead of
// throwing: the switch then shuts that port down with a log line.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "frame.hpp"
#include "port_counters.hpp"

namespace vdtu::net {

enum class PortKind : std::uint8_t { kSharedMemory, kUplink, kVhostUser };

constexpr std::string_view to_string(PortKind k) {
  switch (k) {
    case PortKind::kSharedMemory: return "shm";
    case PortKind::kUplink: return "uplink";
    case PortKind::kVhostUser: return "vhost-user";
  }
  return "unknown";
}

struct PortFailure {
  std::string reason;
  bool misbehaved = false;  // false: the peer just left
};

class Port {
 public:
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;
  Port(Port&&) = delete;
  Port& operator=(Port&&) = delete;
  virtual ~Port() = default;

  [[nodiscard]] virtual PortKind kind() const = 0;
  // A few words for logs and the report ("veth0", "pid 1234").
  [[nodiscard]] virtual std::string peer() const = 0;

  // Up to out.size() frames from the peer. They stay valid, and the peer's
  // buffers stay taken, until release_received().
  virtual std::uint32_t receive_burst(std::span<ReceivedFrame> out) = 0;
  virtual void release_received() = 0;
  // Copies frames (each at most the port's largest frame) to the peer and
  // returns how many it took: a prefix; the rest found the queue full.
  virtual std::uint32_t transmit_burst(std::span<const ReceivedFrame* const> frames) = 0;

  // Sleeping in epoll: wakeup_fd() becomes readable when the peer sends
  // after arm_wakeup() returned true (false: there is work already).
  [[nodiscard]] virtual int wakeup_fd() const = 0;
  virtual bool arm_wakeup() = 0;
  virtual void disarm_wakeup() = 0;
  // Collects counters kept elsewhere (e.g. by the kernel); called now and then.
  virtual void refresh_counters() {}

  // The switch ends the port for a reason of its own (the peer misbehaved
  // somewhere the port cannot see, e.g. on its connection).
  void shut_down(std::string reason) { fail(std::move(reason), true); }
  // Why this port has to go (its peer broke the protocol or left).
  [[nodiscard]] const std::optional<PortFailure>& failure() const { return failure_; }
  PortCounters& counters() { return counters_; }
  [[nodiscard]] const PortCounters& counters() const { return counters_; }

 protected:
  Port() = default;
  void fail(std::string reason, bool misbehaved) {
    if (!failure_) failure_ = PortFailure{std::move(reason), misbehaved};
  }

 private:
  std::optional<PortFailure> failure_;
  PortCounters counters_;
};

}  // namespace vdtu::net
