#include "node_bridge.hpp"

#include "bridge_batch.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>
#include <utility>

namespace vdtu::dtu {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kRemoteReceiveSlots = 64;  // channel size for unlimited credits
// The largest payload one MESSAGE carries: a frame holds the bridge header,
// the DTU header and the payload. Larger messages are refused at configuration.
constexpr std::uint32_t kMaxRemotePayload =
    static_cast<std::uint32_t>(bridge::kMaxFramePayload - sizeof(BridgeHeader) - kHeaderSize);
constexpr auto kBindPatience = 10s;               // a target endpoint may appear late (boot order)
constexpr auto kSilenceBeforeFirstContact = 10s;  // a peer that never answered is given longer
constexpr std::uint32_t kDatagramsPerStep = 256;  // then the loop serves its PEs again
constexpr std::size_t kLargestUdpPayload = 65507;
// A part of a remote memory access: it and its header, or its answer and its
// header, fit one frame.
constexpr std::uint32_t kMemoryPart = bridge::kMaxFramePayload - 64;
constexpr std::size_t kMaxBacklogBytes = std::size_t{4} << 20;  // per peer: then we stop taking its messages
// Per peer, messages and replies it sent that wait for room in a local
// channel (or for their binding's receiver to appear). One binding holds at
// most twice its window of 64, but a peer may have a binding per endpoint of
// its PEs; beyond this we stop taking its messages, as for the backlog.
constexpr std::size_t kMaxWaitingBytes = std::size_t{32} << 20;
// How long an acknowledgement or a credit may wait for a frame to the same
// peer to ride in: a kernelcall's answer usually goes back within this, and
// the loop polls longer than this after any work, so nothing waits for a
// sleeping loop.
constexpr auto kAckDelay = 50us;
constexpr auto kCreditDelay = 50us;

template <class T>
std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span(&value, 1));
}

template <class T>
bool read_body(std::span<const std::byte> body, T& out) {
  if (body.size() != sizeof(T)) return false;
  std::memcpy(&out, body.data(), sizeof(T));
  return true;
}

std::uint64_t random_session() {
  std::random_device device;
  const std::uint64_t value = (std::uint64_t{device()} << 32U) | device();
  return value == 0 ? 1 : value;
}

}  // namespace

// The node's loop watches the eventfd of a channel the bridge consumes for
// as long as the binding lives.
class ChannelWatch {
 public:
  ChannelWatch() = default;
  ChannelWatch(EventWatcher& watcher, const SharedChannel& channel)
      : watcher_(&watcher), fd_(channel.eventfd()) {
    watcher.watch(fd_, event_tag(EventKind::kBridgeEvent, static_cast<std::uint32_t>(fd_)));
  }
  ChannelWatch(const ChannelWatch&) = delete;
  ChannelWatch& operator=(const ChannelWatch&) = delete;
  ChannelWatch(ChannelWatch&& other) noexcept
      : watcher_(std::exchange(other.watcher_, nullptr)), fd_(std::exchange(other.fd_, -1)) {}
  ChannelWatch& operator=(ChannelWatch&& other) noexcept {
    if (this != &other) {
      stop();
      watcher_ = std::exchange(other.watcher_, nullptr);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~ChannelWatch() { stop(); }

 private:
  void stop() {
    if (watcher_ != nullptr) watcher_->unwatch(fd_);
    watcher_ = nullptr;
  }
  EventWatcher* watcher_ = nullptr;
  int fd_ = -1;
};

struct NodeBridge::Peer {
  Peer(const PeerNode& c, std::uint16_t self_id, std::uint64_t session)
      : config(c), address(bridge::make_address(c.host, c.port)), self(self_id), link(link_config(session)) {}

  [[nodiscard]] bridge::LinkConfig link_config(std::uint64_t session) const {
    bridge::LinkConfig c{self, config.id, session, 256, std::chrono::microseconds(3000)};
    c.ack_delay = kAckDelay;
    return c;
  }

  PeerNode config;
  sockaddr_in address;
  std::uint16_t self;
  bridge::ReliableLink link;
  std::uint64_t dead_session = 0;              // of the incarnation we lost: its late datagrams are stale
  std::deque<std::vector<std::byte>> backlog;  // control messages the link could not take yet
  std::size_t backlog_bytes = 0;
  std::size_t waiting_bytes = 0;       // its messages and replies queued in our bindings (kMaxWaitingBytes)
  std::uint64_t inbound_bindings = 0;  // its send endpoints bound to ours
  Clock::time_point last_heard{};
  Clock::time_point last_heartbeat{};
  bool heard = false;
  bool lost = false;
};

// A local send endpoint whose target is on a peer.
struct NodeBridge::Outbound {
  Peer* peer = nullptr;
  std::uint32_t id = 0;
  std::uint32_t pe = 0;  // the sender's PE index
  EpId ep = 0;
  std::shared_ptr<SharedChannel> request;
  std::shared_ptr<SharedChannel> reply;
  std::unique_ptr<Consumer> requests;
  std::unique_ptr<Producer> replies;
  ChannelWatch request_watch;
  EpId reply_ep = kNoReplyEp;
  std::uint16_t reply_index = 0;
  std::uint32_t window = 0;      // messages the peer can still take
  std::uint32_t slots = 0;       // the window when nothing is outstanding
  std::uint64_t unanswered = 0;  // requests forwarded that no reply answered yet
  std::deque<std::vector<std::byte>> replies_waiting;
};

// A peer's send endpoint that targets one of our receive endpoints.
struct NodeBridge::Inbound {
  Peer* peer = nullptr;
  std::uint32_t id = 0;
  BindBody bind{};
  bool bound = false;
  Clock::time_point give_up{};
  Status refusal = Status::kOk;
  std::uint32_t pe = 0;  // the receiver's PE index
  std::uint16_t index = 0;
  std::shared_ptr<SharedChannel> channel;
  std::shared_ptr<SharedChannel> reply;
  std::unique_ptr<Producer> messages;
  std::unique_ptr<Consumer> replies;
  ChannelWatch reply_watch;
  std::deque<std::vector<std::byte>> waiting;  // at most the sender's window (plus its channel, when closing)
  std::uint32_t window = 0;                    // the sender's window (its channel's slots)
  std::uint64_t delivered = 0;                 // messages moved into the receiver's channel
  std::uint64_t replied = 0;                   // replies forwarded to the sender
  std::uint32_t credit_due = 0;                // delivered, not yet CREDITed
  Clock::time_point credit_since{};            // when credit_due last became nonzero
  bool closing = false;  // the sender's endpoint is gone: deliver what waits, then release
};

NodeBridge::NodeBridge(NodeCore& core, EventWatcher& watcher)
    : core_(core),
      watcher_(watcher),
      socket_(core.config().bridge_fd >= 0
                  ? bridge::UdpSocket::adopt(UniqueFd(core.config().bridge_fd))
                  : bridge::UdpSocket::bind(core.config().bridge_host, core.config().bridge_port)),
      doorbell_(Doorbell::create(core.config().max_endpoints())),
      faults_(core.config().faults),
      buffer_(kLargestUdpPayload + 1) {
  const auto& config = core.config();
  if (config.cluster_key) {
    bridge::SessionConfig sessions;
    sessions.self = config.node_id;
    sessions.cluster_key = *config.cluster_key;
    std::vector<bridge::NodeId> ids;
    ids.reserve(config.peers.size());
    for (const auto& p : config.peers) ids.push_back(p.id);
    sessions_.emplace(sessions, ids);
  }
  const auto session = random_session();
  for (const auto& p : config.peers) peers_.push_back(std::make_unique<Peer>(p, config.node_id, session));
  watcher_.watch(socket_.fd(), event_tag(EventKind::kBridgeSocket, 0));
}

NodeBridge::~NodeBridge() { watcher_.unwatch(socket_.fd()); }

bool NodeBridge::quiet() const {
  return std::all_of(peers_.begin(), peers_.end(), [](const auto& p) {
    return p->lost || (p->backlog.empty() && p->link.in_flight() == 0);
  });
}

NodeBridge::Peer* NodeBridge::peer_owning(PeId pe) {
  for (auto& p : peers_) {
    if (static_cast<std::uint16_t>(pe - p->config.first_pe) < p->config.pe_count) return p.get();
  }
  return nullptr;
}

NodeBridge::Peer* NodeBridge::peer_by_id(std::uint16_t id) {
  for (auto& p : peers_) {
    if (p->config.id == id) return p.get();
  }
  return nullptr;
}

// ---- control plane -----------------------------------------------------------

Status NodeBridge::connect_send(std::uint32_t pe, EpId ep, const SendConfig& c) {
  Peer* peer = peer_owning(c.target_pe);
  // The target's node checks its endpoint count when it binds.
  if (peer == nullptr || c.target_ep >= kMaxDoorbellEndpoints) return Status::kInvalidArgument;
  if (peer->lost) return Status::kPeerGone;
  const bool wants_reply = c.reply_ep != kNoReplyEp;
  if (wants_reply && c.reply_ep >= core_.pe(pe).endpoints.size()) return Status::kInvalidArgument;
  if (c.credits == 0) return Status::kInvalidArgument;
  if (c.max_msg_size == 0 || c.max_msg_size > kMaxRemotePayload) return Status::kTooLarge;
  const auto slot_size = std::max<std::uint32_t>(ChannelGeometry::kMinSlotSize,
                                                 std::bit_ceil(c.max_msg_size + std::uint32_t{kHeaderSize}));
  if (!core_.reply_endpoint_ready(pe, c)) return Status::kNotConfigured;
  core_.invalidate(pe, ep, Status::kNotConfigured);
  const auto reply_slot_size = wants_reply ? core_.pe(pe).endpoints[c.reply_ep].slot_size : 0;
  const BindingSpec spec{std::nullopt,
                         wants_reply,
                         wants_reply ? std::optional(LocalReceiver{pe, c.reply_ep}) : std::nullopt,
                         channel_slots(c.credits, kRemoteReceiveSlots),
                         slot_size,
                         reply_slot_size};
  BoundChannels bound;
  if (const auto st = core_.bind_channels(spec, bound); st != Status::kOk) return st;

  auto out = std::make_unique<Outbound>();
  out->peer = peer;
  out->id = next_binding_++;
  out->pe = pe;
  out->ep = ep;
  out->request = bound.request;
  out->reply = bound.reply;
  out->requests = std::make_unique<Consumer>(*out->request);
  out->request_watch = ChannelWatch(watcher_, *out->request);
  if (wants_reply) {
    out->replies = std::make_unique<Producer>(*out->reply);
    out->reply_ep = c.reply_ep;
    out->reply_index = bound.reply_index;
  }
  out->window = spec.slots;
  out->slots = spec.slots;

  auto& e = core_.pe(pe).endpoints[ep];
  e.kind = EndpointKind::kSend;
  e.send = with_credits_for(c, spec.slots);
  e.request = out->request;
  e.reply = out->reply;
  e.index_at_target = 0;
  e.reply_index = bound.reply_index;
  e.remote_binding = out->id;
  core_.queue(NodeCore::sender_update(pe, ep, e, doorbell_.fd(), c.target_pe));

  BindBody b{};
  b.target_pe = c.target_pe;
  b.target_ep = c.target_ep;
  b.sender_pe = core_.global_id(pe);
  b.sender_ep = ep;
  b.sender_vpe = core_.pe(pe).vpe;
  b.label = c.label;
  b.credits = c.credits;
  b.max_msg_size = c.max_msg_size;
  b.sender_reply_ep = wants_reply ? c.reply_ep : kNoReplyEp;
  b.reply_slot_size = reply_slot_size;
  emit(*peer, BridgeOp::kBind, out->id, bytes_of(b));
  outbound_[out->id] = std::move(out);
  return Status::kOk;
}

void NodeBridge::disconnect_send(std::uint32_t id) {
  // The caller (NodeCore::invalidate) ends the channels and the reply slot.
  auto it = outbound_.find(id);
  if (it == outbound_.end()) return;
  auto& out = *it->second;
  if (!out.peer->lost) {
    // Like a local channel, what was sent before the end still arrives: the
    // messages the bridge has not forwarded yet go ahead of the UNBIND.
    forward(*out.requests, *out.peer, BridgeOp::kMessage, id, UINT32_MAX, true);
    emit(*out.peer, BridgeOp::kUnbind, id);
  }
  forget_waiting(*out.peer, out.replies_waiting);
  outbound_.erase(it);
}

void NodeBridge::receiver_gone(std::uint32_t pe, EpId ep, Status reason) {
  for (auto it = inbound_.begin(); it != inbound_.end();) {
    auto& in = *it->second;
    const bool hit = in.bound && in.pe == pe && in.bind.target_ep == ep;
    if (!hit) {
      ++it;
      continue;
    }
    if (in.channel) in.channel->terminate();
    if (in.reply) {
      // Replies the receiver gave before it went still reach the sender.
      in.reply->terminate();
      forward(*in.replies, *in.peer, BridgeOp::kReply, in.id, UINT32_MAX, true);
    }
    const UnboundBody body{reason};
    if (!in.peer->lost) emit(*in.peer, BridgeOp::kUnbound, in.id, bytes_of(body));
    it = erase_inbound(it);
  }
}

void NodeBridge::pe_gone(std::uint32_t pe) { memory_waiting_.erase(pe); }

void NodeBridge::add_stats(NodeStats& into) const {
  into.datagrams_sent += datagrams_sent_;
  into.frames_batched += batches_sent_;
  into.datagrams_received += datagrams_received_;
  into.datagrams_rejected += datagrams_unknown_ + datagrams_strangers_;
  into.datagrams_from_strangers += datagrams_strangers_;
  into.datagrams_forged += datagrams_forged_;
  into.datagrams_replayed += datagrams_replayed_;
  into.datagrams_rejected += datagrams_stale_;
  into.remote_messages += forwarded_;
  into.remote_unknown_binding += unknown_binding_;
  into.remote_bindings_refused += refused_;
  into.remote_window_violations += window_violations_;
  into.remote_oversized += oversized_;
  into.peers_lost += peers_lost_;
  into.peers_returned += peers_returned_;
  into.malformed_requests += malformed_messages_;
  for (const auto& p : peers_) {
    const auto& s = p->link.stats();
    into.datagrams_rejected += s.malformed + s.stale;
    into.retransmissions += s.retransmissions;
    into.duplicates_dropped += s.duplicates;
  }
  into.faults = faults_.stats();
}

void NodeBridge::add_peers(NodeSnapshot& into, Clock::time_point now) const {
  for (const auto& p : peers_) {
    const auto& s = p->link.stats();
    PeerSnapshot out;
    out.id = p->config.id;
    out.host = p->config.host;
    out.port = p->config.port;
    out.first_pe = p->config.first_pe;
    out.pe_count = p->config.pe_count;
    out.sealed = sessions_.has_value();
    out.heard = p->heard;
    out.lost = p->lost;
    out.rtt_samples = s.rtt_samples;
    out.rtt_last_us = static_cast<std::uint64_t>(s.rtt_last.count());
    out.rtt_smoothed_us = static_cast<std::uint64_t>(s.rtt_smoothed.count());
    out.sent = s.sent;
    out.delivered = s.delivered;
    out.retransmissions = s.retransmissions;
    out.duplicates = s.duplicates;
    out.out_of_order = s.out_of_order;
    out.rejected = s.malformed + s.stale;
    out.in_flight = p->link.in_flight();
    out.backlog = p->backlog.size();
    out.backlog_bytes = p->backlog_bytes;
    out.inbound_bindings = p->inbound_bindings;
    for (const auto& [id, o] : outbound_) out.outbound_bindings += o->peer == p.get() ? 1 : 0;
    if (p->heard) {
      out.last_heard_ms = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(now - p->last_heard).count());
    }
    into.peers.push_back(std::move(out));
  }
}

void NodeBridge::add_tap_points(std::vector<TapPoint>& into) const {
  for (const auto& [key, in] : inbound_) {
    if (!in->bound) continue;
    const auto receiver = core_.global_id(in->pe);
    TraceRecordHeader m{};
    m.direction = TraceDirection::kFromPeer;
    m.sender_pe = in->bind.sender_pe;
    m.sender_ep = in->bind.sender_ep;
    m.receiver_pe = receiver;
    m.receiver_ep = in->bind.target_ep;
    m.flags = core_.privileged(receiver) ? kTraceReceiverPrivileged : 0;
    if (in->channel) into.push_back({in->channel, m});
    if (in->reply) {
      TraceRecordHeader r{};
      r.direction = TraceDirection::kToPeer;
      r.flags =
          static_cast<std::uint8_t>(kTraceReply | (core_.privileged(receiver) ? kTraceSenderPrivileged : 0));
      r.sender_pe = receiver;
      r.sender_ep = in->bind.target_ep;
      r.receiver_pe = in->bind.sender_pe;
      r.receiver_ep = in->bind.sender_reply_ep;
      into.push_back({in->reply, r});
    }
  }
}

// ---- the node loop's rounds ------------------------------------------------------

bool NodeBridge::arm_for_sleep() {
  send_deferred(Clock::now());
  armed_.clear();
  const auto arm = [&](Consumer* c) {
    if (c->arm_event()) {
      armed_.push_back(c);
      return true;
    }
    return false;
  };
  bool ready = false;
  for (auto& [id, out] : outbound_) {
    if (out->window > 0 && !arm(out->requests.get())) ready = true;
    if (ready) break;
  }
  for (auto& [key, in] : inbound_) {
    if (ready) break;
    if (in->replies && !arm(in->replies.get())) ready = true;
  }
  if (!ready) return true;
  disarm_after_sleep();
  return false;
}

void NodeBridge::disarm_after_sleep() {
  for (auto* c : armed_) c->cancel_event();
  armed_.clear();
}

// Until a retransmission (2 ms while anything is unacknowledged) or a
// heartbeat is due; datagrams and channel events wake the loop earlier.
std::chrono::milliseconds NodeBridge::sleep_limit(Clock::time_point /*now*/) const {
  const bool in_flight = std::any_of(peers_.begin(), peers_.end(), [](const auto& p) {
    return p->link.in_flight() > 0 || !p->backlog.empty();
  });
  if (in_flight) return 2ms;
  return std::max<std::chrono::milliseconds>(
      1ms, std::chrono::duration_cast<std::chrono::milliseconds>(core_.config().peer_timeout / 4));
}

bool NodeBridge::step(Clock::time_point now) {
  bool busy = receive_datagrams(now);
  std::vector<std::byte> message;
  for (auto& p : peers_) {
    // What the peer asks for (answers, credit, refusals) waits in its backlog
    // until the link takes it. While that is large, the peer's messages wait
    // in the link, whose window then closes: the peer is pushed back instead
    // of growing our memory.
    while (p->backlog_bytes < kMaxBacklogBytes && p->waiting_bytes < kMaxWaitingBytes &&
           p->link.receive(message)) {
      busy = true;
      if (!p->lost) handle(*p, message, now);
    }
  }
  for (auto it = inbound_.begin(); it != inbound_.end();) {
    auto& in = *it->second;
    if (!in.bound) {
      const auto result = try_bind(in);
      if (result == BindResult::kNotYet && now < in.give_up) {
        ++it;
        continue;
      }
      if (result != BindResult::kBound) {
        ++refused_;
        const UnboundBody body{result == BindResult::kRefused ? in.refusal : Status::kNotConfigured};
        emit(*in.peer, BridgeOp::kUnbound, in.id, bytes_of(body));
        it = erase_inbound(it);
        continue;
      }
    }
    busy = pump_inbound(in) || busy;
    if (in.closing && in.waiting.empty()) {
      release(in);
      it = erase_inbound(it);
      continue;
    }
    ++it;
  }
  for (auto& [id, out] : outbound_) busy = pump_outbound(*out) || busy;
  send_owed_credits(now, false);
  if (sessions_) sessions_->poll(now, session_transmit());
  for (auto& p : peers_) {
    check_peer(*p, now);  // its heartbeat leaves with this round's frames
    flush(*p);
    p->link.poll(now, [&](std::span<const std::byte> datagram) { transmit(*p, datagram); });
  }
  return busy;
}

// Faults are injected on what goes on the wire: a duplicated sealed datagram
// is a replay to the receiver. Sealed, a frame waits in its link while there
// is no session with the peer (the link resends it).
void NodeBridge::transmit(const Peer& peer, std::span<const std::byte> frame) {
  if (sessions_) {
    if (sessions_->seal(peer.config.id, frame, sealed_) != Status::kOk) return;
    frame = sealed_;
  }
  send_datagram(peer, frame);
}

void NodeBridge::send_datagram(const Peer& peer, std::span<const std::byte> datagram) {
  faults_.transmit(datagram, [&](std::span<const std::byte> d) {
    datagrams_sent_ += socket_.send_to(peer.address, d) ? 1 : 0;
  });
}

// Handshake messages of the secure sessions, to the peer's configured address.
bridge::SessionTransmit NodeBridge::session_transmit() {
  return [this](bridge::NodeId id, std::span<const std::byte> datagram) {
    if (const Peer* peer = peer_by_id(id)) send_datagram(*peer, datagram);
  };
}

// Sealed: the frame in a datagram from `peer`'s address, once the secure
// session opened it; nullopt if it is discarded (a handshake, or rejected:
// counted and logged). A peer that proves to be a new incarnation (restarted,
// or it gave us up) starts over: its bindings end and its link is new.
std::optional<std::span<const std::byte>> NodeBridge::unseal(Peer& peer, std::span<const std::byte> datagram,
                                                             const sockaddr_in& from, Clock::time_point now) {
  if (!sessions_) return datagram;
  const auto opened = sessions_->open(datagram, peer.config.id, now, session_transmit());
  if (opened.rejected()) {
    switch (opened.verdict) {
      case bridge::Verdict::kForged: reject(datagrams_forged_, from, "failed authentication"); break;
      case bridge::Verdict::kReplayed: reject(datagrams_replayed_, from, "replayed"); break;
      case bridge::Verdict::kStale: reject(datagrams_stale_, from, "of a session that is gone"); break;
      case bridge::Verdict::kRateLimited:
        reject(datagrams_unknown_, from, "handshakes beyond the budget");
        break;
      default: reject(datagrams_unknown_, from, "malformed"); break;
    }
    return std::nullopt;
  }
  if (opened.change == bridge::PeerChange::kNewIncarnation) start_over(peer, now);
  if (opened.verdict != bridge::Verdict::kFrame) return std::nullopt;
  return opened.frame;
}

void NodeBridge::reject(std::uint64_t& count, const sockaddr_in& from, std::string_view why) {
  ++count;
  if (!std::has_single_bit(count)) return;  // the 1st, 2nd, 4th, ...: visible, but no flood of lines
  spdlog::warn("node {}: bridge: discarded a datagram from {}: {} ({} so far)", core_.config().node_id,
               bridge::format_address(from), why, count);
}

NodeBridge::Peer* NodeBridge::peer_at(const sockaddr_in& from) {
  for (auto& p : peers_) {
    if (p->address.sin_addr.s_addr == from.sin_addr.s_addr && p->address.sin_port == from.sin_port)
      return p.get();
  }
  return nullptr;
}

// A datagram counts only if it comes from the address a peer is configured
// at, names that peer as its sender and, when sealed, was sealed by it.
// At most kDatagramsPerStep per round, so a flood cannot keep the loop from
// its PEs.
bool NodeBridge::receive_datagrams(Clock::time_point now) {
  std::uint32_t taken = 0;
  sockaddr_in from{};
  for (; taken < kDatagramsPerStep; ++taken) {
    const auto n = socket_.receive(buffer_, &from);
    if (!n) break;
    ++datagrams_received_;
    if (*n >= buffer_.size()) {
      reject(datagrams_unknown_, from, "too large");
      continue;
    }
    Peer* peer = peer_at(from);
    if (peer == nullptr) {
      reject(datagrams_strangers_, from, "not from a peer's address");
      continue;
    }
    const auto unsealed = unseal(*peer, std::span(buffer_).first(*n), from, now);
    if (!unsealed) continue;
    const auto frame = *unsealed;
    bridge::FrameHeader h{};
    if (frame.size() < sizeof(h)) {
      reject(datagrams_unknown_, from, "shorter than a frame header");
      continue;
    }
    std::memcpy(&h, frame.data(), sizeof(h));
    if (h.src_node != peer->config.id) {
      reject(datagrams_unknown_, from, "names another node than the one at its address");
      continue;
    }
    if (peer->lost && !welcome_back(*peer, h, from)) continue;
    if (peer->link.on_datagram(frame, now) == bridge::ReliableLink::Received::kRejected) {
      reject(link_rejections_, from, "malformed, misaddressed or from another incarnation");
      continue;
    }
    peer->last_heard = now;
    peer->heard = true;
  }
  return taken > 0;
}

void NodeBridge::handle(Peer& peer, std::span<const std::byte> message, Clock::time_point now) {
  BridgeHeader h{};
  if (message.size() < sizeof(h)) {
    ++malformed_messages_;
    return;
  }
  std::memcpy(&h, message.data(), sizeof(h));
  const std::uint32_t binding = h.binding;  // out of the packed header before use by reference
  const auto body = message.subspan(sizeof(h));
  switch (h.op) {
    case BridgeOp::kBind: bind(peer, h, body, now); return;
    case BridgeOp::kUnbind: {
      auto it = inbound_.find(inbound_key(peer.config.id, binding));
      if (it == inbound_.end()) return;
      // Like a terminated local channel, what was sent before the end is still
      // delivered: the binding closes once its waiting messages are in.
      auto& in = *it->second;
      in.closing = true;
      if (in.bound) pump_inbound(in);
      if (in.waiting.empty()) {
        release(in);
        erase_inbound(it);
      }
      return;
    }
    case BridgeOp::kUnbound: {
      UnboundBody b{};
      auto it = outbound_.find(binding);
      if (!read_body(body, b)) return;
      // Our binding ids are one sequence for all peers: each peer speaks
      // only for the bindings we made with it.
      if (it == outbound_.end() || it->second->peer != &peer) {
        ++unknown_binding_;
        return;
      }
      const auto pe = it->second->pe;
      const auto ep = it->second->ep;
      if (auto& out = *it->second; out.replies) {  // replies that came before the end
        produce(*out.peer, out.replies_waiting, *out.replies, out.pe, out.reply_ep, out.reply_index);
      }
      if (b.reason != Status::kPeerGone) {  // a receiver that ended is no news
        spdlog::warn("node {} PE {}: node {} refused binding {} of EP {}: {}", core_.config().node_id,
                     core_.global_id(pe), peer.config.id, binding, ep, to_string(b.reason));
      }
      end_outbound(it, b.reason);
      return;
    }
    case BridgeOp::kMessage: {
      auto it = inbound_.find(inbound_key(peer.config.id, binding));
      if (it == inbound_.end()) {
        ++unknown_binding_;
        return;
      }
      auto& in = *it->second;
      // The sender forwards at most its window before credit comes back, and
      // when it closes, what its channel still held: never more than twice the
      // window. A peer that sends more ignores flow control: the binding ends.
      if (in.waiting.size() >= 2 * std::size_t{in.window}) {
        ++window_violations_;
        const UnboundBody refusal{Status::kInvalidArgument};
        emit(peer, BridgeOp::kUnbound, binding, bytes_of(refusal));
        release(in);
        erase_inbound(it);
        return;
      }
      in.waiting.emplace_back(body.begin(), body.end());
      peer.waiting_bytes += body.size();
      return;
    }
    case BridgeOp::kReply: {
      auto it = outbound_.find(binding);
      if (it == outbound_.end() || it->second->peer != &peer || !it->second->replies) {
        ++unknown_binding_;
        return;
      }
      // Replies answer requests, one each: never more than were sent (and
      // so never more than the window can be due).
      if (it->second->unanswered == 0 || it->second->replies_waiting.size() >= it->second->slots) {
        ++window_violations_;
        return;
      }
      --it->second->unanswered;
      it->second->replies_waiting.emplace_back(body.begin(), body.end());
      peer.waiting_bytes += body.size();
      return;
    }
    case BridgeOp::kCredit: {
      CreditBody b{};
      auto it = outbound_.find(binding);
      if (!read_body(body, b)) {
        ++malformed_messages_;
        return;
      }
      if (it == outbound_.end() || it->second->peer != &peer) {
        ++unknown_binding_;
        return;
      }
      auto& out = *it->second;
      if (b.count > out.slots - out.window) {  // credit for more than was sent
        ++window_violations_;
        out.window = out.slots;
        return;
      }
      out.window += b.count;
      return;
    }
    case BridgeOp::kHeartbeat: return;
    case BridgeOp::kMemoryRequest: serve_remote_memory(peer, binding, body); return;
    case BridgeOp::kMemoryReply: finish_remote_memory(peer, binding, body); return;
    case BridgeOp::kBatch:
      if (!for_each_in_batch(body, [&](std::span<const std::byte> m) { handle(peer, m, now); })) {
        ++malformed_messages_;
      }
      return;
  }
  ++malformed_messages_;
}

// ---- memory endpoints on another node's memory ------------------------------------

bool NodeBridge::reaches(std::uint16_t node) {
  const Peer* peer = peer_by_id(node);
  return peer != nullptr && !peer->lost;
}

Status NodeBridge::forward_memory(std::uint32_t pe, const MemoryConfig& c, const MemoryRequest& r,
                                  std::span<const std::byte> data, std::uint64_t replylabel) {
  Peer* peer = peer_by_id(c.node);
  if (peer == nullptr || peer->lost) return Status::kPeerGone;
  auto& waiting = memory_waiting_[pe];
  waiting = {peer, replylabel, 0, Status::kOk, {}, r.op == MemoryOp::kRead ? r.length : 0};
  std::uint32_t done = 0;
  do {
    const std::uint32_t length = std::min(kMemoryPart, r.length - done);
    MemoryAccessBody access{};
    access.target_pe = c.target_pe;
    access.op = r.op;
    access.offset = c.offset + r.offset + done;  // checked against c.size by the memory service
    access.length = length;
    const bool write = r.op == MemoryOp::kWrite;
    std::vector<std::byte> body(sizeof(access) + (write ? length : 0));
    std::memcpy(body.data(), &access, sizeof(access));
    if (write && length > 0) std::memcpy(body.data() + sizeof(access), data.data() + done, length);
    emit(*peer, BridgeOp::kMemoryRequest, pe, body);
    ++waiting.parts_left;
    done += length;
  } while (done < r.length);
  return Status::kOk;
}

// A peer's PE reads or writes our memory: the window is checked here, on the
// node that owns the memory, as for a local PE.
void NodeBridge::serve_remote_memory(Peer& peer, std::uint32_t requester, std::span<const std::byte> body) {
  MemoryAccessBody access{};
  if (body.size() < sizeof(access)) {
    ++malformed_messages_;
    return;
  }
  std::memcpy(&access, body.data(), sizeof(access));
  const auto data = body.subspan(sizeof(access));
  const auto op = access.op;
  const std::uint32_t length = access.length;
  MemoryReplyBody reply{Status::kOk};
  if (length > kMemoryPart) {  // an answer must fit one frame
    ++malformed_messages_;
    reply.status = Status::kTooLarge;
    emit(peer, BridgeOp::kMemoryReply, requester, bytes_of(reply));
    return;
  }
  const auto window =
      core_.memory_window({access.target_pe, access.offset, length, kMemReadWrite, kThisNode});
  if ((op != MemoryOp::kRead && op != MemoryOp::kWrite) ||
      (op == MemoryOp::kWrite && data.size() != length)) {
    reply.status = Status::kInvalidArgument;
  } else if (length == 0 || window.size() != length) {
    reply.status = Status::kOutOfBounds;
  }
  std::vector<std::byte> answer(sizeof(reply));
  if (reply.status == Status::kOk && op == MemoryOp::kWrite) std::memcpy(window.data(), data.data(), length);
  if (reply.status == Status::kOk && op == MemoryOp::kRead)
    answer.insert(answer.end(), window.begin(), window.end());
  std::memcpy(answer.data(), &reply, sizeof(reply));
  ++core_.counters().memory_requests;
  if (reply.status != Status::kOk) ++core_.counters().memory_rejected;
  emit(peer, BridgeOp::kMemoryReply, requester, answer);
}

void NodeBridge::finish_remote_memory(Peer& peer, std::uint32_t pe, std::span<const std::byte> body) {
  auto it = memory_waiting_.find(pe);
  MemoryReplyBody reply{};
  if (it == memory_waiting_.end() || it->second.peer != &peer || body.size() < sizeof(reply)) {
    ++malformed_messages_;
    return;
  }
  std::memcpy(&reply, body.data(), sizeof(reply));
  auto& waiting = it->second;
  if (waiting.status == Status::kOk) waiting.status = reply.status;
  const auto data = body.subspan(sizeof(reply));
  if (data.size() > waiting.expected - waiting.read.size()) {
    ++malformed_messages_;  // more than was asked for: the access fails, nothing more is kept
    waiting.status = Status::kBroken;
  } else {
    waiting.read.insert(waiting.read.end(), data.begin(), data.end());
  }
  if (--waiting.parts_left > 0) return;
  if (waiting.status == Status::kOk && waiting.read.size() != waiting.expected)
    waiting.status = Status::kBroken;
  complete_remote_memory(it, waiting.status);
}

NodeBridge::MemoryWaitMap::iterator NodeBridge::complete_remote_memory(MemoryWaitMap::iterator it,
                                                                       Status status) {
  const auto pe = it->first;
  const auto& waiting = it->second;
  core_.pe(pe).memory_remote_pending = false;
  core_.answer_memory(
      pe, waiting.replylabel, status,
      status == Status::kOk ? std::span<const std::byte>(waiting.read) : std::span<const std::byte>{});
  return memory_waiting_.erase(it);
}

void NodeBridge::bind(Peer& peer, const BridgeHeader& h, std::span<const std::byte> body,
                      Clock::time_point now) {
  auto in = std::make_unique<Inbound>();
  if (!read_body(body, in->bind) || !core_.is_local(in->bind.target_pe)) {
    ++malformed_messages_;
    return;
  }
  const auto key = inbound_key(peer.config.id, h.binding);
  if (auto old = inbound_.find(key); old != inbound_.end()) {
    // An honest peer never reuses a live id: end the old binding first, so
    // nothing of it (its channel slot above all) is left behind.
    ++malformed_messages_;
    release(*old->second);
    erase_inbound(old);
  }
  // A peer has at most one binding per send endpoint of its PEs.
  // (Nodes of a cluster share their endpoint counts; kernels have more.)
  if (peer.inbound_bindings >= std::uint64_t{peer.config.pe_count} * core_.config().max_endpoints()) {
    ++refused_;
    const UnboundBody refusal{Status::kNoResources};
    emit(peer, BridgeOp::kUnbound, h.binding, bytes_of(refusal));
    return;
  }
  in->peer = &peer;
  in->id = h.binding;
  in->give_up = now + kBindPatience;
  in->window = channel_slots(in->bind.credits, kRemoteReceiveSlots);
  inbound_[key] = std::move(in);
  ++peer.inbound_bindings;
}

// Binds to the target receive endpoint, if it is there yet. A refusal that
// waiting cannot cure is answered at once.
NodeBridge::BindResult NodeBridge::try_bind(Inbound& in) {
  const auto& b = in.bind;
  const auto target = core_.index_of(b.target_pe);
  if (!target || b.target_ep >= core_.pe(*target).endpoints.size()) return BindResult::kNotYet;
  const auto& recv = core_.pe(*target).endpoints[b.target_ep];
  if (recv.kind != EndpointKind::kReceive || recv.terminated) return BindResult::kNotYet;
  const auto refuse = [&](Status reason) {
    in.refusal = reason;
    return BindResult::kRefused;
  };
  if (b.max_msg_size == 0 || b.max_msg_size > recv.slot_size - kHeaderSize) return refuse(Status::kTooLarge);
  const bool wants_reply = b.sender_reply_ep != kNoReplyEp;
  if (wants_reply &&
      (b.reply_slot_size < ChannelGeometry::kMinSlotSize ||
       b.reply_slot_size > ChannelGeometry::kMaxSlotSize || !std::has_single_bit(b.reply_slot_size))) {
    return refuse(Status::kInvalidArgument);
  }
  const BindingSpec spec{LocalReceiver{*target, b.target_ep},       wants_reply,    std::nullopt,
                         channel_slots(b.credits, recv.slot_count), recv.slot_size, b.reply_slot_size};
  BoundChannels bound;
  if (const auto st = core_.bind_channels(spec, bound); st != Status::kOk) return refuse(st);
  in.channel = bound.request;
  in.reply = bound.reply;
  in.messages = std::make_unique<Producer>(*in.channel);
  if (wants_reply) {
    in.replies = std::make_unique<Consumer>(*in.reply);
    in.reply_watch = ChannelWatch(watcher_, *in.reply);
  }
  in.pe = *target;
  in.index = bound.request_index;
  in.bound = true;
  const InboundChannelInfo info{*target,        b.target_ep,       in.index,    spec.slots,
                                recv.slot_size, b.sender_pe,       b.sender_ep, b.sender_vpe,
                                b.label,        b.sender_reply_ep, 0,           b.reply_slot_size};
  core_.queue(NodeCore::inbound_update(info, in.channel, in.reply, doorbell_.fd()));
  return BindResult::kBound;
}

// Moves messages that arrived from a peer into a local channel, in order, as
// far as it has room; returns how many left the queue.
std::uint32_t NodeBridge::produce(Peer& from, std::deque<std::vector<std::byte>>& queue, Producer& producer,
                                  std::uint32_t pe, EpId ep, std::uint16_t index) {
  std::uint32_t moved = 0;
  while (!queue.empty()) {
    const auto& bytes = queue.front();
    MessageHeader header{};
    if (bytes.size() >= kHeaderSize) {
      std::memcpy(&header, bytes.data(), kHeaderSize);
      const auto st = producer.try_send(header, std::span(bytes).subspan(kHeaderSize));
      if (st == Status::kFull) break;
      if (st == Status::kOk) {
        core_.pe(pe).doorbell.ring(ep, index);
      } else {
        ++unknown_binding_;  // terminated meanwhile: the receiver cannot take it any more
      }
    } else {
      ++malformed_messages_;
    }
    from.waiting_bytes -= bytes.size();
    queue.pop_front();
    ++moved;
  }
  return moved;
}

// Sends up to `limit` messages of a local channel to the peer. With `drain`,
// all of them, through the backlog (the channel is about to go).
std::uint32_t NodeBridge::forward(Consumer& consumer, Peer& peer, BridgeOp op, std::uint32_t id,
                                  std::uint32_t limit, bool drain) {
  std::uint32_t sent = 0;
  while (sent < limit && !peer.lost &&
         (drain || (peer.backlog_bytes < kBatchBytes && peer.link.can_send()))) {
    MessageView v;
    if (consumer.try_fetch(v) != Status::kOk) break;
    std::vector<std::byte> body(kHeaderSize + v.payload.size());
    std::memcpy(body.data(), &v.header, kHeaderSize);
    if (!v.payload.empty()) std::memcpy(body.data() + kHeaderSize, v.payload.data(), v.payload.size());
    consumer.ack(1);
    emit(peer, op, id, body);
    ++sent;
  }
  forwarded_ += sent;
  return sent;
}

bool NodeBridge::pump_inbound(Inbound& in) {
  const auto moved = produce(*in.peer, in.waiting, *in.messages, in.pe, in.bind.target_ep, in.index);
  in.delivered += moved;
  if (moved > 0 && !in.closing) owe_credit(in, moved);  // a closing binding's sender is gone
  // A receiver answers what it got, once each: more replies than requests
  // stay in its channel (which then fills), they do not flood the peer.
  const auto due = static_cast<std::uint32_t>(std::min<std::uint64_t>(in.delivered - in.replied, UINT32_MAX));
  const auto replies = in.replies ? forward(*in.replies, *in.peer, BridgeOp::kReply, in.id, due, false) : 0;
  in.replied += replies;
  return moved + replies > 0;
}

bool NodeBridge::pump_outbound(Outbound& out) {
  const auto replies = out.replies ? produce(*out.peer, out.replies_waiting, *out.replies, out.pe,
                                             out.reply_ep, out.reply_index)
                                   : 0;
  const auto sent = forward(*out.requests, *out.peer, BridgeOp::kMessage, out.id, out.window, false);
  out.window -= sent;
  if (out.replies) out.unanswered += sent;
  return replies + sent > 0;
}

// The peer ended the binding (or is lost): the sender's endpoint goes, and
// says why. The binding goes first, so the invalidation does not echo an UNBIND.
NodeBridge::OutboundMap::iterator NodeBridge::end_outbound(OutboundMap::iterator it, Status reason) {
  const auto pe = it->second->pe;
  const auto ep = it->second->ep;
  forget_waiting(*it->second->peer, it->second->replies_waiting);
  it = outbound_.erase(it);
  core_.pe(pe).endpoints[ep].remote_binding = 0;
  core_.invalidate(pe, ep, reason);
  return it;
}

// Like a local sender's invalidation: the receiver drops the channel.
void NodeBridge::release(Inbound& in) {
  if (!in.bound) return;
  const auto& e = core_.pe(in.pe).endpoints[in.bind.target_ep];
  if (e.kind == EndpointKind::kReceive && e.inbound_at(in.index) == in.channel.get()) {
    core_.release_inbound(in.pe, in.bind.target_ep, in.index);
  }
  if (in.reply) in.reply->terminate();
}

NodeBridge::InboundMap::iterator NodeBridge::erase_inbound(InboundMap::iterator it) {
  --it->second->peer->inbound_bindings;
  forget_waiting(*it->second->peer, it->second->waiting);
  return inbound_.erase(it);
}

void NodeBridge::forget_waiting(Peer& from, const std::deque<std::vector<std::byte>>& queue) {
  for (const auto& m : queue) from.waiting_bytes -= m.size();
}

void NodeBridge::emit(Peer& peer, BridgeOp op, std::uint32_t binding, std::span<const std::byte> body) {
  if (sizeof(BridgeHeader) + body.size() > bridge::kMaxFramePayload) {
    // Only a PE writing past its endpoint's size gets here (configuration
    // refuses larger messages): dropped and counted, never left to jam the link.
    ++oversized_;
    return;
  }
  std::vector<std::byte> m(sizeof(BridgeHeader) + body.size());
  const BridgeHeader h{op, binding};
  std::memcpy(m.data(), &h, sizeof(h));
  if (!body.empty()) std::memcpy(m.data() + sizeof(h), body.data(), body.size());
  peer.backlog_bytes += m.size();
  peer.backlog.push_back(std::move(m));
  if (peer.backlog_bytes >= kBatchBytes) flush(peer);
}

// What waits for a peer goes into its link in as few frames as batches allow
// (each step ends with a flush, so nothing waits longer than that).
void NodeBridge::flush(Peer& peer) {
  while (!peer.backlog.empty() && peer.link.can_send()) {
    const auto count = batchable(peer.backlog);
    const auto st =
        count == 1 ? peer.link.send(peer.backlog.front()) : peer.link.send(make_batch(peer.backlog, count));
    if (st != Status::kOk) return;
    batches_sent_ += count > 1 ? 1 : 0;
    for (std::size_t i = 0; i < count; ++i) {
      peer.backlog_bytes -= peer.backlog.front().size();
      peer.backlog.pop_front();
    }
  }
}

// A credit the sender does not need yet waits for a frame to its node, so that
// a kernelcall and the credit for the one before it leave in one datagram; once
// half the sender's window is delivered, it goes at once, so the sender never
// stalls for it.
void NodeBridge::owe_credit(Inbound& in, std::uint32_t moved) {
  if (in.credit_due == 0) {
    in.credit_since = Clock::now();
    credits_owed_.push_back(inbound_key(in.peer->config.id, in.id));
  }
  in.credit_due += moved;
  if (in.credit_due >= std::max<std::uint32_t>(1, in.window / 2)) send_credit(in);
}

void NodeBridge::send_credit(Inbound& in) {
  const CreditBody credit{std::exchange(in.credit_due, 0)};
  emit(*in.peer, BridgeOp::kCredit, in.id, bytes_of(credit));
}

// After a step's messages are in the backlogs: a credit owed to a peer that
// gets a frame anyway rides along; one owed for kCreditDelay goes alone; with
// `all`, every one goes.
void NodeBridge::send_owed_credits(Clock::time_point now, bool all) {
  std::erase_if(credits_owed_, [&](std::uint64_t key) {
    const auto it = inbound_.find(key);
    if (it == inbound_.end() || it->second->credit_due == 0 || it->second->closing) return true;
    auto& in = *it->second;
    if (!all && in.peer->backlog.empty() && now - in.credit_since < kCreditDelay) return false;
    send_credit(in);
    return true;
  });
}

// Before the loop sleeps: what waited to ride along leaves now.
void NodeBridge::send_deferred(Clock::time_point now) {
  if (credits_owed_.empty() &&
      std::none_of(peers_.begin(), peers_.end(), [](const auto& p) { return p->link.ack_due(); })) {
    return;
  }
  send_owed_credits(now, true);
  for (auto& p : peers_) {
    flush(*p);
    const auto transmit_to_peer = [&](std::span<const std::byte> datagram) { transmit(*p, datagram); };
    p->link.poll(now, transmit_to_peer);
    p->link.flush_ack(transmit_to_peer);
  }
}

void NodeBridge::check_peer(Peer& peer, Clock::time_point now) {
  if (peer.lost) return;
  if (peer.last_heard == Clock::time_point{}) peer.last_heard = now;
  const auto silence = now - peer.last_heard;
  const auto limit = peer.heard
                         ? core_.config().peer_timeout
                         : std::max<Clock::duration>(core_.config().peer_timeout, kSilenceBeforeFirstContact);
  if (silence > limit && (peer.heard || peer.link.in_flight() > 0)) {
    lose_peer(peer);
    return;
  }
  if (now - peer.last_heartbeat >= core_.config().peer_timeout / 4) {
    peer.last_heartbeat = now;
    emit(peer, BridgeOp::kHeartbeat, 0);
  }
}

// A lost peer that speaks again with a new session was restarted: it starts
// afresh with the fresh link lose_peer left. Its old incarnation stays dead.
bool NodeBridge::welcome_back(Peer& peer, const bridge::FrameHeader& h, const sockaddr_in& from) {
  if (h.session == peer.dead_session || h.magic != bridge::kFrameMagic ||
      h.dst_node != core_.config().node_id) {
    reject(datagrams_unknown_, from, "from a node that was lost");
    return false;
  }
  peer.lost = false;
  ++peers_returned_;
  peer.heard = false;
  peer.last_heard = Clock::time_point{};
  spdlog::info("node {}: node {} is back (a new incarnation)", core_.config().node_id, peer.config.id);
  return true;
}

// The peer went silent: every binding with it ends, as if its PEs had died.
// Its link starts over with a new session, so that nothing of this
// incarnation reaches a restarted peer; sealed, its secure session too.
void NodeBridge::lose_peer(Peer& peer) {
  peer.lost = true;
  peer.dead_session = peer.link.peer_session();
  ++peers_lost_;
  spdlog::warn("node {}: node {} is silent for too long; its bindings end", core_.config().node_id,
               peer.config.id);
  end_all_with(peer);
  if (sessions_) sessions_->restart(peer.config.id);
}

// A sealed peer proved to be a new incarnation: restarted, or it had given us
// up. What we had with the old one ends (if we had not lost it already), and
// the new one is heard from now on.
void NodeBridge::start_over(Peer& peer, Clock::time_point now) {
  ++peers_returned_;
  if (peer.lost) {
    spdlog::info("node {}: node {} is back (a new incarnation)", core_.config().node_id, peer.config.id);
  } else {
    spdlog::warn("node {}: node {} started over (a new incarnation); its bindings end",
                 core_.config().node_id, peer.config.id);
    end_all_with(peer);
  }
  peer.lost = false;
  peer.dead_session = 0;
  peer.heard = true;
  peer.last_heard = now;
}

// Every binding and memory access with the peer ends; its link starts over.
void NodeBridge::end_all_with(Peer& peer) {
  peer.backlog.clear();
  peer.backlog_bytes = 0;
  for (auto it = memory_waiting_.begin(); it != memory_waiting_.end();) {
    if (it->second.peer != &peer) {
      ++it;
      continue;
    }
    it = complete_remote_memory(it, Status::kPeerGone);
  }
  peer.link = bridge::ReliableLink(peer.link_config(random_session()));
  for (auto it = outbound_.begin(); it != outbound_.end();) {
    if (it->second->peer != &peer) {
      ++it;
      continue;
    }
    it = end_outbound(it, Status::kPeerGone);
  }
  for (auto it = inbound_.begin(); it != inbound_.end();) {
    if (it->second->peer != &peer) {
      ++it;
      continue;
    }
    release(*it->second);
    it = erase_inbound(it);
  }
}

}  // namespace vdtu::dtu
