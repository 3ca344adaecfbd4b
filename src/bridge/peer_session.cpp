#include "peer_session.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace vdtu::bridge {
namespace {

Opened accepted(NodeId peer, PeerChange change = PeerChange::kNone) {
  return {Verdict::kHandshake, peer, change, {}};
}

Opened rejected(NodeId peer, Verdict why) { return {why, peer, PeerChange::kNone, {}}; }

template <class Message>
void send(const SessionContext& ctx, NodeId peer, Message& message) {
  message.mac = ctx.secrets.mac(authenticated_part(message));
  ctx.transmit(peer, std::as_bytes(std::span(&message, 1)));
}

HandshakeHeader header(SessionKind kind, NodeId src, NodeId dst) { return {kind, kSessionVersion, src, dst}; }

}  // namespace

PeerSession::PeerSession(const SessionConfig& config, NodeId peer)
    : self_(config.self),
      peer_(peer),
      incarnation_(random_u64()),
      key_exchange_budget_(config.handshake_burst, config.handshake_interval) {}

std::optional<std::uint64_t> PeerSession::session_id() const {
  if (!current_) return std::nullopt;
  return current_->id;
}

bool PeerSession::is_current(const Session* session) const { return current_ && session == &*current_; }

PeerSession::Session* PeerSession::session_with_id(std::uint64_t id) {
  if (current_ && current_->id == id) return &*current_;
  if (previous_ && previous_->id == id) return &*previous_;
  if (candidate_ && candidate_->session.id == id) return &candidate_->session;
  return nullptr;
}

Opened PeerSession::open_sealed(const SessionContext& ctx, std::span<const std::byte> datagram,
                                std::vector<std::byte>& plain) {
  SealedHeader h{};
  if (datagram.size() < kSealOverhead) return rejected(peer_, Verdict::kMalformed);
  std::memcpy(&h, datagram.data(), sizeof(h));  // copy out, then validate
  if (h.kind == SessionKind::kConfirm && datagram.size() != kSealOverhead) {
    return rejected(peer_, Verdict::kMalformed);
  }
  Session* session = session_with_id(h.session);
  if (session == nullptr) return rejected(peer_, Verdict::kStale);
  plain.resize(datagram.size() - kSealOverhead);
  if (!open_aead(session->keys.receive, h.counter, datagram.first(sizeof(h)), datagram.subspan(sizeof(h)),
                 plain.data())) {
    return rejected(peer_, Verdict::kForged);
  }
  // Authentic: now the window may judge it, and move.
  switch (session->window.check(h.counter)) {
    case ReplayWindow<kReplayWindowBits>::Check::kTooOld: return rejected(peer_, Verdict::kStale);
    case ReplayWindow<kReplayWindowBits>::Check::kSeen: return rejected(peer_, Verdict::kReplayed);
    case ReplayWindow<kReplayWindowBits>::Check::kNew: break;
  }
  session->window.accept(h.counter);

  PeerChange change = PeerChange::kNone;
  if (candidate_ && session == &candidate_->session) {
    // Key confirmation: the initiator holds the candidate's keys, so it is no replay.
    Session confirmed = std::move(candidate_->session);
    candidate_.reset();
    change = install(ctx, std::move(confirmed));
    session = &*current_;
  }
  if (!session->confirmed) {
    session->confirmed = true;
    if (is_current(session)) previous_until_ = ctx.now + ctx.config.previous_grace;
  }
  if (h.kind == SessionKind::kConfirm) {
    // The initiator repeats CONFIRM until it hears from us under the session.
    if (is_current(session) && !session->we_initiated) send_confirm(ctx);
    return accepted(peer_, change);
  }
  return {Verdict::kFrame, peer_, change, std::span<const std::byte>(plain)};
}

bool PeerSession::answered_before(const PublicKey& initiator_ephemeral) const {
  return std::find(answered_.begin(), answered_.end(), initiator_ephemeral) != answered_.end();
}

Opened PeerSession::on_init(const SessionContext& ctx, const InitMessage& init) {
  if (candidate_ && candidate_->initiator_ephemeral == init.ephemeral) {
    // Our RESPONSE was lost (or this is a replay): the same answer again, at a
    // bounded rate, without new key work.
    if (ctx.now - candidate_->last_response < ctx.config.retry_initial / 2) {
      return rejected(peer_, Verdict::kRateLimited);
    }
    candidate_->last_response = ctx.now;
    ctx.transmit(peer_, std::as_bytes(std::span(&candidate_->response, 1)));
    return accepted(peer_);
  }
  if (answered_before(init.ephemeral)) return rejected(peer_, Verdict::kReplayed);
  if (attempt_ && self_ < peer_) {
    // Both initiated: the lower node id's initiation wins, and the peer answers it.
    ++ctx.stats.collisions;
    return accepted(peer_);
  }
  if (!ctx.cookies.valid(peer_, self_, init.ephemeral, init.cookie)) {
    CookieMessage answer{header(SessionKind::kCookie, self_, peer_),
                         init.ephemeral,
                         ctx.cookies.make(peer_, self_, init.ephemeral),
                         {}};
    send(ctx, peer_, answer);
    ++ctx.stats.cookies_sent;
    return accepted(peer_);
  }
  if (!key_exchange_budget_.take(ctx.now)) return rejected(peer_, Verdict::kRateLimited);

  answered_[answered_next_] = init.ephemeral;
  answered_next_ = (answered_next_ + 1) % answered_.size();
  const auto own = EphemeralKeys::generate();
  auto keys = ctx.secrets.responder_keys(own, init.ephemeral);
  ctx.stats.key_exchanges += 2;
  if (!keys) return rejected(peer_, Verdict::kForged);  // an unusable public key

  attempt_.reset();  // the peer's initiation wins over ours
  Candidate candidate{
      {session_id_of(init.ephemeral, own.public_key),
       std::move(*keys),
       0,
       {},
       init.incarnation,
       false,
       false,
       ctx.now},
      init.ephemeral,
      {header(SessionKind::kResponse, self_, peer_), incarnation_, own.public_key, init.ephemeral, {}},
      ctx.now};
  candidate_.emplace(std::move(candidate));
  send(ctx, peer_, candidate_->response);
  return accepted(peer_);
}

Opened PeerSession::on_cookie(const SessionContext& ctx, const CookieMessage& message) {
  if (!attempt_ || attempt_->ephemeral.public_key != message.initiator_ephemeral) {
    return rejected(peer_, Verdict::kStale);
  }
  if (attempt_->cookie == message.cookie) return rejected(peer_, Verdict::kReplayed);
  attempt_->cookie = message.cookie;
  send_init(ctx);
  return accepted(peer_);
}

Opened PeerSession::on_response(const SessionContext& ctx, const ResponseMessage& response) {
  if (!attempt_ || attempt_->ephemeral.public_key != response.initiator_ephemeral) {
    return rejected(peer_, Verdict::kStale);
  }
  auto keys = ctx.secrets.initiator_keys(attempt_->ephemeral, response.ephemeral);
  ++ctx.stats.key_exchanges;
  if (!keys) return rejected(peer_, Verdict::kForged);
  Session session{session_id_of(attempt_->ephemeral.public_key, response.ephemeral),
                  std::move(*keys),
                  0,
                  {},
                  response.incarnation,
                  true,
                  false,
                  ctx.now};
  const auto change = install(ctx, std::move(session));
  confirm_backoff_ = ctx.config.retry_initial;
  next_confirm_ = ctx.now + confirm_backoff_;
  send_confirm(ctx);
  return accepted(peer_, change);
}

// `session` becomes current. Within one incarnation of the peer (a rekey) the
// replaced session stays as `previous`; a new incarnation's datagrams must
// not mix with the old one's.
PeerChange PeerSession::install(const SessionContext& ctx, Session session) {
  PeerChange change = PeerChange::kFirstContact;
  if (known_peer_incarnation_) {
    change = *known_peer_incarnation_ == session.peer_incarnation ? PeerChange::kNone
                                                                  : PeerChange::kNewIncarnation;
  }
  if (change == PeerChange::kNone && current_) {
    previous_ = std::move(current_);
  } else if (change != PeerChange::kNone) {
    previous_.reset();
  }
  known_peer_incarnation_ = session.peer_incarnation;
  current_.emplace(std::move(session));
  previous_until_ = ctx.now + ctx.config.previous_grace;
  attempt_.reset();
  candidate_.reset();
  ++ctx.stats.sessions_established;
  if (change == PeerChange::kNewIncarnation) ++ctx.stats.new_incarnations;
  return change;
}

Status PeerSession::seal(std::span<const std::byte> frame, std::vector<std::byte>& out) {
  if (!current_) return Status::kNotActive;
  return seal_with(*current_, SessionKind::kData, frame, out);
}

Status PeerSession::seal_with(Session& session, SessionKind kind, std::span<const std::byte> plain,
                              std::vector<std::byte>& out) const {
  if (plain.size() > kMaxSealedPlaintext) return Status::kTooLarge;
  if (session.next_counter == std::numeric_limits<std::uint64_t>::max()) return Status::kNotActive;
  const SealedHeader h{kind, kSessionVersion, session.id, session.next_counter++};
  out.resize(kSealOverhead + plain.size());
  std::memcpy(out.data(), &h, sizeof(h));
  seal_aead(session.keys.send, h.counter, std::span(out).first(sizeof(h)), plain, out.data() + sizeof(h));
  return Status::kOk;
}

void PeerSession::send_confirm(const SessionContext& ctx) {
  std::vector<std::byte> datagram;
  if (seal_with(*current_, SessionKind::kConfirm, {}, datagram) == Status::kOk) ctx.transmit(peer_, datagram);
}

void PeerSession::start_attempt(const SessionContext& ctx) {
  attempt_.emplace(Attempt{EphemeralKeys::generate(), std::nullopt, ctx.now, {}, ctx.config.retry_initial});
  ++ctx.stats.key_exchanges;
  send_init(ctx);
}

void PeerSession::send_init(const SessionContext& ctx) {
  InitMessage init{header(SessionKind::kInit, self_, peer_),
                   incarnation_,
                   attempt_->ephemeral.public_key,
                   attempt_->cookie.value_or(Cookie{}),
                   {}};
  send(ctx, peer_, init);
  attempt_->next_send = ctx.now + attempt_->backoff;
}

bool PeerSession::rekey_due(const SessionContext& ctx) const {
  if (!current_->confirmed) return false;
  return current_->next_counter >= ctx.config.rekey_after_datagrams ||
         (current_->we_initiated && ctx.now - current_->established >= ctx.config.rekey_after);
}

void PeerSession::poll(const SessionContext& ctx) {
  const auto& config = ctx.config;
  if (previous_ && (!current_ || current_->confirmed) && ctx.now >= previous_until_) previous_.reset();
  if (candidate_ && ctx.now - candidate_->session.established >= config.handshake_timeout) candidate_.reset();
  if (current_ && !current_->confirmed) {
    if (ctx.now - current_->established >= config.handshake_timeout) {
      // The responder never took it up: it still uses the session this one
      // replaced, if any, so that one is current again; then start over.
      current_ = std::move(previous_);
      previous_.reset();
    } else if (ctx.now >= next_confirm_) {
      send_confirm(ctx);
      confirm_backoff_ = std::min<SessionClock::duration>(2 * confirm_backoff_, config.retry_max);
      next_confirm_ = ctx.now + confirm_backoff_;
    }
  }
  // An attempt unanswered for long starts over with new keys: the responder
  // may have given up the session it answered with, and then counts the old
  // key's INITs as replays.
  if (attempt_ && ctx.now - attempt_->started >= config.handshake_timeout) attempt_.reset();
  if (!attempt_ && !candidate_ && (!current_ || rekey_due(ctx))) {
    start_attempt(ctx);
  } else if (attempt_ && ctx.now >= attempt_->next_send) {
    attempt_->backoff = std::min<SessionClock::duration>(2 * attempt_->backoff, config.retry_max);
    send_init(ctx);
  }
}

void PeerSession::restart() {
  current_.reset();
  previous_.reset();
  attempt_.reset();
  candidate_.reset();
  known_peer_incarnation_.reset();
  incarnation_ = random_u64();
}

}  // namespace vdtu::bridge
