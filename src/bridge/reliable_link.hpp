#pragma once
// One direction-pair between two nodes: reliable, in order, exactly once,
// with back-pressure. Pure protocol logic: datagrams in, datagrams out; the
// caller owns the socket and the clock, so tests can lose, duplicate and
// reorder at will.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "frame.hpp"
#include "vdtu/status.hpp"

namespace vdtu::bridge {

struct LinkConfig {
  std::uint16_t self = 0;
  std::uint16_t peer = 0;
  std::uint64_t session = 0;   // random per incarnation
  std::uint32_t window = 256;  // messages in flight / buffered per direction
  std::chrono::microseconds retransmit_after{3000};
  // Each round of retransmissions without progress doubles the wait, up to
  // this; an acknowledgement that retires a frame resets it.
  std::chrono::microseconds max_retransmit_after{250'000};
  // How long an acknowledgement may wait for a DATA frame to carry it before
  // it goes alone. Zero: at once. Acks of duplicates and of a reopened window
  // never wait.
  std::chrono::microseconds ack_delay{0};
};

struct LinkStats {
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;
  std::uint64_t retransmissions = 0;
  std::uint64_t duplicates = 0;     // data we had already: acked again, discarded
  std::uint64_t out_of_order = 0;   // buffered until the gap closed
  std::uint64_t beyond_window = 0;  // discarded unacked: the sender will resend
  std::uint64_t malformed = 0;      // bad magic, version, type, length, addressing
  std::uint64_t stale = 0;          // from another incarnation of the peer
  // Round trips of frames acknowledged without a retransmission (Karn's
  // rule: a resent frame's ack cannot tell which copy it answers).
  std::uint64_t rtt_samples = 0;
  std::chrono::microseconds rtt_last{0};
  std::chrono::microseconds rtt_smoothed{0};  // 7/8 old + 1/8 new, as TCP's SRTT
};

class ReliableLink {
 public:
  using Clock = std::chrono::steady_clock;
  using Transmit = std::function<void(std::span<const std::byte>)>;

  explicit ReliableLink(LinkConfig config);

  // Queues one message. kFull when the peer's window (or ours) is exhausted:
  // the caller keeps the message and tries again; nothing is dropped.
  Status send(std::span<const std::byte> message);
  // What a received datagram was to the link.
  enum class Received : std::uint8_t {
    kNews,      // new data, or an acknowledgement that retired frames: the peer is alive
    kNothing,   // valid but old: a duplicate, a repeated ack, beyond the window
    kRejected,  // malformed, misaddressed or from another incarnation (counted)
  };
  // Feeds one received datagram; invalid ones are counted and ignored.
  // `now` times the round trip of the frames its acknowledgement retires.
  Received on_datagram(std::span<const std::byte> datagram, Clock::time_point now);
  Received on_datagram(std::span<const std::byte> datagram) { return on_datagram(datagram, Clock::now()); }
  // Emits what is due now: new data, retransmissions, an acknowledgement
  // (a delayed one only once its delay passed).
  void poll(Clock::time_point now, const Transmit& transmit);
  // Emits a pending acknowledgement now, delayed or not: before the caller
  // stops polling.
  void flush_ack(const Transmit& transmit);
  // Next message in order, if any; its slot in the window frees.
  bool receive(std::vector<std::byte>& message);

  // True when send() would accept a message now.
  [[nodiscard]] bool can_send() const { return in_flight_.size() < std::min(config_.window, peer_window_); }
  // An acknowledgement waits to be sent (with a DATA frame, or alone).
  [[nodiscard]] bool ack_due() const { return ack_due_; }
  // Messages sent and not yet acknowledged.
  [[nodiscard]] std::size_t in_flight() const { return in_flight_.size(); }
  [[nodiscard]] const LinkStats& stats() const { return stats_; }
  // The peer's session, once a frame from it arrived (0 before).
  [[nodiscard]] std::uint64_t peer_session() const { return peer_session_; }

 private:
  struct Outgoing {
    std::uint64_t seq = 0;
    std::vector<std::byte> datagram;  // header and payload, ready to resend
    Clock::time_point last_sent{};
    bool sent = false;
    bool resent = false;
  };
  [[nodiscard]] std::uint16_t free_receive_slots() const;
  void sample_rtt(const Outgoing& retired, Clock::time_point now);
  [[nodiscard]] std::vector<std::byte> frame(FrameType type, std::uint64_t seq,
                                             std::span<const std::byte> payload) const;

  LinkConfig config_;
  LinkStats stats_;
  // sending
  std::uint64_t next_seq_ = 0;
  std::deque<Outgoing> in_flight_;  // seq order; the front is the oldest unacknowledged
  std::uint32_t peer_window_;
  // receiving
  std::uint64_t expected_ = 0;                             // next sequence number to deliver in order
  std::map<std::uint64_t, std::vector<std::byte>> early_;  // out of order, within the window
  std::deque<std::vector<std::byte>> ready_;               // in order, not yet taken
  std::uint64_t peer_session_ = 0;
  bool ack_due_ = false;
  Clock::time_point ack_due_since_{};           // the epoch: due at once
  std::chrono::microseconds retransmit_after_;  // current, after backoff
};

}  // namespace vdtu::bridge
