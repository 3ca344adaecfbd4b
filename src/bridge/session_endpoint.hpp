#pragma once
// This node's end of the secure sessions with its peer nodes: every bridge
// datagram goes through it. Pure protocol logic like ReliableLink: datagrams
// in, datagrams out, time from the caller (a steady clock); no sockets, no
// threads. Not thread-safe: one owner (the bridge thread) calls it.
//
// Per peer, a handshake authenticated with the cluster key makes a session
// from fresh ephemeral X25519 keys (forward secrecy); DATA datagrams carry
// one frame each, sealed under the session's key for that direction with a
// counter from 0 and checked against a replay window. Nothing depends on any
// node's wall clock. Formats and rules: docs/PROTOCOL.md, "Sealed datagrams".
//
// The bridge thread:
//   open(datagram, peer the source address belongs to, now, transmit)
//     kFrame      -> if change == kNewIncarnation, restart the link to the
//                    peer first; then check frame's src_node == peer and
//                    hand the frame to the link
//     kHandshake  -> nothing to do (answers went out through transmit);
//                    check `change` as above
//     rejected()  -> count and drop
//   seal(peer, frame, out) -> kOk: send `out`; kNotActive: no session yet
//                    (send nothing: the link still holds the frame and
//                    resends it later)
//   poll(now, transmit)    -> call as often as the links' poll
//   restart(peer)          -> when the caller declares the peer lost
//   transmit(peer, datagram) (the caller's) sends to that peer's configured
//                    address, never to where a datagram came from

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "cookie_mint.hpp"
#include "peer_session.hpp"
#include "session_crypto.hpp"
#include "session_types.hpp"
#include "vdtu/status.hpp"

namespace vdtu::bridge {

class SessionEndpoint {
 public:
  using Clock = SessionClock;
  using Transmit = SessionTransmit;

  // Throws std::invalid_argument if `peers` names `config.self` or a node twice.
  SessionEndpoint(const SessionConfig& config, std::span<const NodeId> peers);

  // One received datagram, from the address of `expected_peer`. Answers
  // (handshake messages) go to `transmit`, addressed to that peer.
  Opened open(std::span<const std::byte> datagram, NodeId expected_peer, Clock::time_point now,
              const Transmit& transmit);
  // The DATA datagram carrying `frame` to `peer`, in `out`. kNotActive: no
  // session with the peer yet; kTooLarge: frame above kMaxSealedPlaintext;
  // kInvalidArgument: not a peer.
  Status seal(NodeId peer, std::span<const std::byte> frame, std::vector<std::byte>& out);
  // Handshake messages that are due (first tries, repeats, rekeys).
  void poll(Clock::time_point now, const Transmit& transmit);
  // The caller lost `peer` (or gives up on it): every key and session with
  // it goes; the next handshake presents us as a new incarnation, so the peer
  // restarts its side too. Unknown peers are ignored.
  void restart(NodeId peer);

  [[nodiscard]] bool established(NodeId peer) const;
  // The current session's id with `peer` (for tests and diagnostics).
  [[nodiscard]] std::optional<std::uint64_t> session_id(NodeId peer) const;
  [[nodiscard]] const SessionStats& stats() const { return stats_; }
  [[nodiscard]] NodeId self() const { return config_.self; }

 private:
  PeerSession* find(NodeId peer);
  [[nodiscard]] const PeerSession* find(NodeId peer) const;
  Opened dispatch(PeerSession& peer, std::span<const std::byte> datagram, const SessionContext& ctx);
  template <class Message>
  std::optional<Message> authenticated(std::span<const std::byte> datagram, NodeId expected_peer,
                                       Verdict& why) const;
  void count(const Opened& opened);

  SessionConfig config_;
  ClusterSecrets secrets_;
  CookieMint cookies_;
  std::vector<std::unique_ptr<PeerSession>> peers_;
  SessionStats stats_;
  std::vector<std::byte> plain_;  // the last opened frame
};

}  // namespace vdtu::bridge
