#include "session_endpoint.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace vdtu::bridge {

SessionEndpoint::SessionEndpoint(const SessionConfig& config, std::span<const NodeId> peers)
    : config_(config), secrets_(config.cluster_key), cookies_(config.cookie_lifetime) {
  for (const NodeId peer : peers) {
    if (peer == config.self || find(peer) != nullptr) {
      throw std::invalid_argument("secure sessions: each peer once, and not the node itself");
    }
    peers_.push_back(std::make_unique<PeerSession>(config_, peer));
  }
  plain_.reserve(kMaxSealedPlaintext);
  // The key was copied into the derived secrets; no other copy stays here.
  wipe_secret(config_.cluster_key.data(), config_.cluster_key.size());
}

PeerSession* SessionEndpoint::find(NodeId peer) {
  const auto it =
      std::find_if(peers_.begin(), peers_.end(), [&](const auto& p) { return p->peer() == peer; });
  return it == peers_.end() ? nullptr : it->get();
}

const PeerSession* SessionEndpoint::find(NodeId peer) const {
  const auto it =
      std::find_if(peers_.begin(), peers_.end(), [&](const auto& p) { return p->peer() == peer; });
  return it == peers_.end() ? nullptr : it->get();
}

Opened SessionEndpoint::open(std::span<const std::byte> datagram, NodeId expected_peer, Clock::time_point now,
                             const Transmit& transmit) {
  cookies_.rotate(now);
  Opened opened{Verdict::kForged, expected_peer, PeerChange::kNone, {}};
  if (PeerSession* peer = find(expected_peer)) {
    const SessionContext ctx{config_, secrets_, cookies_, stats_, transmit, now};
    opened = dispatch(*peer, datagram, ctx);
  }
  count(opened);
  return opened;
}

Opened SessionEndpoint::dispatch(PeerSession& peer, std::span<const std::byte> datagram,
                                 const SessionContext& ctx) {
  Opened rejected{Verdict::kMalformed, peer.peer(), PeerChange::kNone, {}};
  if (datagram.size() < 2 || datagram.size() > kMaxUdpPayload ||
      static_cast<std::uint8_t>(datagram[1]) != kSessionVersion) {
    return rejected;
  }
  switch (static_cast<SessionKind>(datagram[0])) {
    case SessionKind::kData:
    case SessionKind::kConfirm: return peer.open_sealed(ctx, datagram, plain_);
    case SessionKind::kInit:
      if (const auto m = authenticated<InitMessage>(datagram, peer.peer(), rejected.verdict)) {
        return peer.on_init(ctx, *m);
      }
      return rejected;
    case SessionKind::kCookie:
      if (const auto m = authenticated<CookieMessage>(datagram, peer.peer(), rejected.verdict)) {
        return peer.on_cookie(ctx, *m);
      }
      return rejected;
    case SessionKind::kResponse:
      if (const auto m = authenticated<ResponseMessage>(datagram, peer.peer(), rejected.verdict)) {
        return peer.on_response(ctx, *m);
      }
      return rejected;
  }
  return rejected;  // an unknown kind
}

// A handshake message is taken only whole, from the expected peer, to us,
// with the cluster key's MAC.
template <class Message>
std::optional<Message> SessionEndpoint::authenticated(std::span<const std::byte> datagram,
                                                      NodeId expected_peer, Verdict& why) const {
  Message m{};
  if (datagram.size() != sizeof(m)) {
    why = Verdict::kMalformed;
    return std::nullopt;
  }
  std::memcpy(&m, datagram.data(), sizeof(m));  // copy out, then validate
  if (m.header.src != expected_peer || m.header.dst != config_.self ||
      !secrets_.verify(authenticated_part(m), m.mac)) {
    why = Verdict::kForged;
    return std::nullopt;
  }
  return m;
}

void SessionEndpoint::count(const Opened& opened) {
  switch (opened.verdict) {
    case Verdict::kFrame: ++stats_.frames_opened; break;
    case Verdict::kHandshake: ++stats_.handshake_messages; break;
    case Verdict::kMalformed: ++stats_.malformed; break;
    case Verdict::kForged: ++stats_.forged; break;
    case Verdict::kReplayed: ++stats_.replayed; break;
    case Verdict::kStale: ++stats_.stale; break;
    case Verdict::kRateLimited: ++stats_.rate_limited; break;
  }
}

Status SessionEndpoint::seal(NodeId peer, std::span<const std::byte> frame, std::vector<std::byte>& out) {
  PeerSession* session = find(peer);
  if (session == nullptr) return Status::kInvalidArgument;
  const auto status = session->seal(frame, out);
  if (status == Status::kOk) ++stats_.frames_sealed;
  return status;
}

void SessionEndpoint::poll(Clock::time_point now, const Transmit& transmit) {
  cookies_.rotate(now);
  const SessionContext ctx{config_, secrets_, cookies_, stats_, transmit, now};
  for (auto& peer : peers_) peer->poll(ctx);
}

void SessionEndpoint::restart(NodeId peer) {
  if (PeerSession* session = find(peer)) session->restart();
}

bool SessionEndpoint::established(NodeId peer) const {
  const PeerSession* session = find(peer);
  return session != nullptr && session->established();
}

std::optional<std::uint64_t> SessionEndpoint::session_id(NodeId peer) const {
  const PeerSession* session = find(peer);
  return session == nullptr ? std::nullopt : session->session_id();
}

}  // namespace vdtu::bridge
