#pragma once
// What the secure sessions of a node are configured with, report and count
// (session_endpoint.hpp is the interface).

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>

#include "cluster_key.hpp"
#include "session_format.hpp"

namespace vdtu::bridge {

using SessionClock = std::chrono::steady_clock;
// Sends one datagram to a peer (at its configured address).
using SessionTransmit = std::function<void(NodeId peer, std::span<const std::byte> datagram)>;

struct SessionConfig {
  NodeId self = 0;
  ClusterKey cluster_key{};
  // An unanswered INIT (or CONFIRM) is sent again after this, doubling up to retry_max.
  std::chrono::milliseconds retry_initial{50};
  std::chrono::milliseconds retry_max{1000};
  // A new session the other side has not confirmed within this time is
  // dropped (by the initiator, which then starts over, and by the responder).
  std::chrono::milliseconds handshake_timeout{5000};
  // The initiator of a session replaces it with a fresh handshake after this
  // time; either side after sealing this many datagrams under it. Keys taken
  // from a node's memory then open little traffic.
  std::chrono::milliseconds rekey_after{std::chrono::minutes(2)};
  std::uint64_t rekey_after_datagrams = std::uint64_t{1} << 48;
  // After a rekey, the replaced session still opens the peer's datagrams
  // (those sealed before it switched, and reordered ones) until the new one is
  // confirmed and this long after.
  std::chrono::milliseconds previous_grace{2000};
  // A responder's cookie secret changes this often (cookie_mint.hpp).
  std::chrono::milliseconds cookie_lifetime{std::chrono::seconds(30)};
  // X25519 work a peer's handshakes may cause: `handshake_burst` answers at
  // once, then one more per `handshake_interval`.
  std::uint32_t handshake_burst = 4;
  std::chrono::milliseconds handshake_interval{100};
};

enum class Verdict : std::uint8_t {
  kFrame,      // a DATA datagram from the peer: the frame is in Opened::frame
  kHandshake,  // a handshake message or CONFIRM, consumed (answers went to transmit)
  // rejected, nothing changed:
  kMalformed,    // not a datagram of this protocol (size, version, kind)
  kForged,       // failed authentication, or names a sender or receiver other than the expected
  kReplayed,     // authentic, and seen before
  kStale,        // of a session, handshake or window position that is gone
  kRateLimited,  // a handshake over the peer's budget: dropped unanswered
};

// What an accepted datagram changed about the peer.
enum class PeerChange : std::uint8_t {
  kNone,
  kFirstContact,    // the first session with this peer (since start or restart())
  kNewIncarnation,  // the peer started over (a restarted process, or it lost us): restart the link
};

struct Opened {
  Verdict verdict = Verdict::kMalformed;
  NodeId peer = 0;  // kFrame, kHandshake: the authenticated sender (always the expected peer)
  PeerChange change = PeerChange::kNone;
  std::span<const std::byte> frame;  // kFrame: the plaintext, valid until the next open()

  [[nodiscard]] bool rejected() const { return verdict >= Verdict::kMalformed; }
};

struct SessionStats {
  std::uint64_t frames_opened = 0;
  std::uint64_t frames_sealed = 0;
  std::uint64_t handshake_messages = 0;  // accepted INIT, COOKIE, RESPONSE, CONFIRM
  std::uint64_t sessions_established = 0;
  std::uint64_t new_incarnations = 0;
  std::uint64_t key_exchanges = 0;  // X25519 operations (key pairs and shared secrets)
  std::uint64_t cookies_sent = 0;
  std::uint64_t collisions = 0;  // a peer's INIT left unanswered: our own initiation wins
  // rejected
  std::uint64_t malformed = 0;
  std::uint64_t forged = 0;
  std::uint64_t replayed = 0;
  std::uint64_t stale = 0;
  std::uint64_t rate_limited = 0;
};

}  // namespace vdtu::bridge
