#pragma once
// The secure session with one peer node: the handshake that makes it, the
// keys that seal and open its datagrams, and what replaces it (a rekey, a
// restarted peer). SessionEndpoint parses and authenticates what arrives and
// hands each peer's part to its PeerSession.
//
// States (any may coexist): `current` seals and opens; `previous` (after a
// rekey) still opens for a grace period; `candidate` is a session the peer
// initiated and we answered, which replaces `current` only when a datagram
// sealed under it arrives (key confirmation), so a replayed INIT can never
// tear down or replace a live session; `attempt` is our own initiation.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "cookie_mint.hpp"
#include "replay_window.hpp"
#include "session_crypto.hpp"
#include "session_types.hpp"
#include "token_bucket.hpp"
#include "vdtu/status.hpp"

namespace vdtu::bridge {

// What every PeerSession of an endpoint uses during one call.
struct SessionContext {
  const SessionConfig& config;
  const ClusterSecrets& secrets;
  const CookieMint& cookies;
  SessionStats& stats;
  const SessionTransmit& transmit;
  SessionClock::time_point now;
};

class PeerSession {
 public:
  static constexpr std::size_t kReplayWindowBits = 1024;

  PeerSession(const SessionConfig& config, NodeId peer);

  // A DATA or CONFIRM datagram; on kFrame the frame is in `plain`.
  Opened open_sealed(const SessionContext& ctx, std::span<const std::byte> datagram,
                     std::vector<std::byte>& plain);
  // Handshake messages from this peer whose MAC and addressing were checked.
  Opened on_init(const SessionContext& ctx, const InitMessage& init);
  Opened on_cookie(const SessionContext& ctx, const CookieMessage& message);
  Opened on_response(const SessionContext& ctx, const ResponseMessage& response);

  // kNotActive without a session (yet), kTooLarge beyond kMaxSealedPlaintext.
  Status seal(std::span<const std::byte> frame, std::vector<std::byte>& out);
  // Starts, repeats and times out handshakes; forgets old keys.
  void poll(const SessionContext& ctx);
  // Drops every session and key with this peer and starts over as a new
  // incarnation towards it; its next session is a first contact again.
  void restart();

  [[nodiscard]] NodeId peer() const { return peer_; }
  [[nodiscard]] bool established() const { return current_.has_value(); }
  [[nodiscard]] std::optional<std::uint64_t> session_id() const;

 private:
  struct Session {
    std::uint64_t id = 0;
    SessionKeys keys;
    std::uint64_t next_counter = 0;
    ReplayWindow<kReplayWindowBits> window;
    std::uint64_t peer_incarnation = 0;
    bool we_initiated = false;
    bool confirmed = false;  // an authentic datagram under it came from the peer
    SessionClock::time_point established{};
  };
  struct Attempt {  // our initiation, until a RESPONSE (or handshake_timeout: then anew)
    EphemeralKeys ephemeral;
    std::optional<Cookie> cookie;
    SessionClock::time_point started{};
    SessionClock::time_point next_send{};
    SessionClock::duration backoff{};
  };
  struct Candidate {  // the peer's initiation, answered, until confirmed
    Session session;
    PublicKey initiator_ephemeral{};
    ResponseMessage response{};  // sent again if the same INIT comes again
    SessionClock::time_point last_response{};
  };

  [[nodiscard]] bool is_current(const Session* session) const;
  Session* session_with_id(std::uint64_t id);
  PeerChange install(const SessionContext& ctx, Session session);
  void start_attempt(const SessionContext& ctx);
  void send_init(const SessionContext& ctx);
  void send_confirm(const SessionContext& ctx);
  [[nodiscard]] bool rekey_due(const SessionContext& ctx) const;
  [[nodiscard]] bool answered_before(const PublicKey& initiator_ephemeral) const;
  Status seal_with(Session& session, SessionKind kind, std::span<const std::byte> plain,
                   std::vector<std::byte>& out) const;

  NodeId self_;
  NodeId peer_;
  std::uint64_t incarnation_;  // ours towards this peer: new on every start and restart()
  std::optional<std::uint64_t> known_peer_incarnation_;
  std::optional<Session> current_;
  std::optional<Session> previous_;
  SessionClock::time_point previous_until_{};
  std::optional<Attempt> attempt_;
  std::optional<Candidate> candidate_;
  SessionClock::time_point next_confirm_{};
  SessionClock::duration confirm_backoff_{};
  // The last initiator keys we answered: their INITs again are replays.
  std::array<PublicKey, 8> answered_{};
  std::size_t answered_next_ = 0;
  TokenBucket key_exchange_budget_;
};

}  // namespace vdtu::bridge
