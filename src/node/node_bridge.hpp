#pragma once
// The node's bridge: carries DTU messages to and from the PEs of other nodes.
//
// A send endpoint whose target PE lives on a peer node gets its channels as
// usual, but the node's bridge thread is their other side: it consumes the
// requests, sends them over a ReliableLink (UDP) to the peer's bridge, which
// produces them into a channel of the target receive endpoint that it bound
// on its side; replies travel back the same way. PEs see ordinary channels.
//
// Flow control per binding: the sending bridge forwards at most `window`
// messages the receiving bridge has not yet moved into the receiver's
// channel; the receiver returns credit as it does. A slow receiver therefore
// fills its own binding's channels up to the sender, never the link or other
// bindings, and nothing is dropped.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "bridge/fault_injector.hpp"
#include "bridge/reliable_link.hpp"
#include "bridge/session_endpoint.hpp"
#include "bridge/udp_socket.hpp"
#include "bridge_messages.hpp"
#include "event_watcher.hpp"
#include "node_core.hpp"

namespace vdtu::dtu {

class NodeBridge {
 public:
  using Clock = std::chrono::steady_clock;

  // Binds the UDP socket (throws std::system_error) and asks `watcher` to
  // watch it.
  NodeBridge(NodeCore& core, EventWatcher& watcher);
  ~NodeBridge();
  NodeBridge(const NodeBridge&) = delete;
  NodeBridge& operator=(const NodeBridge&) = delete;

  // One round: datagrams in, messages to and from the bindings' channels,
  // timers. True if anything moved.
  bool step(Clock::time_point now);
  // Before the node's loop sleeps: arm the channels the bridge consumes.
  // False if one has something already (the arming is undone).
  bool arm_for_sleep();
  void disarm_after_sleep();
  // How long the loop may sleep before a retransmission or heartbeat is due.
  [[nodiscard]] std::chrono::milliseconds sleep_limit(Clock::time_point now) const;
  // Every peer acknowledged what we sent, or is lost.
  [[nodiscard]] bool quiet() const;
  [[nodiscard]] std::uint16_t port() const { return socket_.port(); }

  // --- control plane -------------------------------------------------------------
  // Binds send endpoint `ep` of PE index `pe` to a PE on a peer node.
  Status connect_send(std::uint32_t pe, EpId ep, const SendConfig& c);
  // The send endpoint of binding `id` was invalidated.
  void disconnect_send(std::uint32_t id);
  // Receive endpoint `ep` of PE index `pe` is gone: remote senders learn why.
  void receiver_gone(std::uint32_t pe, EpId ep, Status reason);
  // PE index `pe` ended: a memory access of it that waits for a peer is forgotten.
  void pe_gone(std::uint32_t pe);
  // True if `node` is a peer that is not lost.
  [[nodiscard]] bool reaches(std::uint16_t node);
  // Sends PE `pe`'s checked memory request to the node owning the memory;
  // its answer goes to the PE when it comes back (kPeerGone if it cannot).
  Status forward_memory(std::uint32_t pe, const MemoryConfig& c, const MemoryRequest& r,
                        std::span<const std::byte> data, std::uint64_t replylabel);
  void add_stats(NodeStats& into) const;
  // One entry per peer: its link's figures (for `vdtu stat`).
  void add_peers(NodeSnapshot& into, Clock::time_point now) const;
  // The channels of bindings from peers (messages in, replies out).
  void add_tap_points(std::vector<TapPoint>& into) const;

 private:
  struct Peer;
  struct Outbound;
  struct Inbound;
  using OutboundMap = std::map<std::uint32_t, std::unique_ptr<Outbound>>;
  using InboundMap = std::map<std::uint64_t, std::unique_ptr<Inbound>>;

  bool receive_datagrams(Clock::time_point now);
  void handle(Peer& peer, std::span<const std::byte> message, Clock::time_point now);
  void bind(Peer& peer, const BridgeHeader& h, std::span<const std::byte> body, Clock::time_point now);
  enum class BindResult : std::uint8_t { kBound, kNotYet, kRefused };
  BindResult try_bind(Inbound& in);
  void release(Inbound& in);
  OutboundMap::iterator end_outbound(OutboundMap::iterator it, Status reason);
  InboundMap::iterator erase_inbound(InboundMap::iterator it);
  // Messages of `from` dropped unproduced: they no longer count to its budget.
  static void forget_waiting(Peer& from, const std::deque<std::vector<std::byte>>& queue);
  bool pump_inbound(Inbound& in);
  std::uint32_t produce(Peer& from, std::deque<std::vector<std::byte>>& queue, Producer& producer,
                        std::uint32_t pe, EpId ep, std::uint16_t index);
  std::uint32_t forward(Consumer& consumer, Peer& peer, BridgeOp op, std::uint32_t id, std::uint32_t limit,
                        bool drain);
  bool pump_outbound(Outbound& out);
  void check_peer(Peer& peer, Clock::time_point now);
  void lose_peer(Peer& peer);
  void emit(Peer& peer, BridgeOp op, std::uint32_t binding, std::span<const std::byte> body = {});
  void flush(Peer& peer);
  void owe_credit(Inbound& in, std::uint32_t moved);
  void send_credit(Inbound& in);
  void send_owed_credits(Clock::time_point now, bool all);
  void send_deferred(Clock::time_point now);
  void transmit(const Peer& peer, std::span<const std::byte> datagram);
  bool welcome_back(Peer& peer, const bridge::FrameHeader& h, const sockaddr_in& from);
  void serve_remote_memory(Peer& peer, std::uint32_t requester, std::span<const std::byte> body);
  void finish_remote_memory(Peer& peer, std::uint32_t pe, std::span<const std::byte> body);
  // Counts a discarded datagram and logs it now and then.
  void reject(std::uint64_t& count, const sockaddr_in& from, std::string_view why);
  // The frame inside a received datagram; nullopt if it must be discarded.
  std::optional<std::span<const std::byte>> unseal(Peer& peer, std::span<const std::byte> datagram,
                                                   const sockaddr_in& from, Clock::time_point now);
  void send_datagram(const Peer& peer, std::span<const std::byte> datagram);
  bridge::SessionTransmit session_transmit();
  void start_over(Peer& peer, Clock::time_point now);
  void end_all_with(Peer& peer);
  Peer* peer_owning(PeId pe);
  Peer* peer_at(const sockaddr_in& from);  // by configured address
  Peer* peer_by_id(std::uint16_t id);
  [[nodiscard]] static std::uint64_t inbound_key(std::uint16_t peer, std::uint32_t id) {
    return (std::uint64_t{peer} << 32U) | id;
  }

  NodeCore& core_;
  EventWatcher& watcher_;
  bridge::UdpSocket socket_;
  Doorbell doorbell_;  // what senders ring; the bridge watches channels instead
  std::vector<std::unique_ptr<Peer>> peers_;
  OutboundMap outbound_;
  InboundMap inbound_;
  // One PE's request, sent in parts that each fit a frame.
  struct RemoteMemory {
    Peer* peer = nullptr;
    std::uint64_t replylabel = 0;
    std::uint32_t parts_left = 0;
    Status status = Status::kOk;  // the first failure of any part
    std::vector<std::byte> read;  // the parts' data, in order (the link keeps it)
    std::uint32_t expected = 0;   // bytes the parts of a read return in all
  };
  using MemoryWaitMap = std::map<std::uint32_t, RemoteMemory>;
  MemoryWaitMap memory_waiting_;  // by requesting PE index
  // Answers the PE (`status`, and what was read if kOk) and forgets the request.
  MemoryWaitMap::iterator complete_remote_memory(MemoryWaitMap::iterator it, Status status);
  std::uint32_t next_binding_ = 1;
  bridge::FaultInjector faults_;
  std::optional<bridge::SessionEndpoint> sessions_;  // with a cluster key
  std::vector<std::byte> buffer_;
  std::vector<std::byte> sealed_;            // with a cluster key: a datagram in its sealed form
  std::vector<Consumer*> armed_;             // while the loop sleeps
  std::vector<std::uint64_t> credits_owed_;  // keys of inbound bindings that may owe a credit
  // counters
  std::uint64_t datagrams_sent_ = 0;
  std::uint64_t batches_sent_ = 0;  // frames holding more than one message
  std::uint64_t datagrams_received_ = 0;
  std::uint64_t datagrams_unknown_ = 0;
  std::uint64_t datagrams_strangers_ = 0;  // not from any peer's configured address
  std::uint64_t link_rejections_ = 0;      // only to pace the log; the links count them by kind
  std::uint64_t datagrams_forged_ = 0;
  std::uint64_t datagrams_replayed_ = 0;
  std::uint64_t datagrams_stale_ = 0;  // sealed, of a session or incarnation that is gone
  std::uint64_t forwarded_ = 0;
  std::uint64_t unknown_binding_ = 0;
  std::uint64_t refused_ = 0;
  std::uint64_t malformed_messages_ = 0;
  std::uint64_t window_violations_ = 0;  // a peer sent beyond a binding's window or credit
  std::uint64_t oversized_ = 0;          // messages too large for a frame: dropped
  std::uint64_t peers_lost_ = 0;
  std::uint64_t peers_returned_ = 0;
};

}  // namespace vdtu::dtu
