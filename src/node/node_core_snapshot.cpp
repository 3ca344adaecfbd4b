// NodeCore::snapshot: the node's state as `vdtu stat` shows it, copied on
// the node's thread. Reads shared channel words (queued, state) that a PE may
// have written: shown as found, never acted on.
#include <map>

#include "node_bridge.hpp"
#include "node_core.hpp"

namespace vdtu::dtu {
namespace {

struct Sender {
  PeId pe = 0;
  EpId ep = 0;
};

EndpointSnapshot send_snapshot(EpId ep, const NodeEndpoint& e) {
  EndpointSnapshot out;
  out.ep = ep;
  out.kind = e.kind;
  out.target_pe = e.send.target_pe;
  out.target_ep = e.send.target_ep;
  out.label = e.send.label;
  out.credits = e.send.credits;
  out.remote = e.remote_binding != 0;
  if (e.request) {
    out.in_flight = e.request->queued();
    out.channel_slots = e.request->geometry().slot_count;
  }
  if (e.reply) out.replies_queued = e.reply->queued();
  return out;
}

EndpointSnapshot receive_snapshot(EpId ep, const NodeEndpoint& e,
                                  const std::map<const SharedChannel*, Sender>& senders) {
  EndpointSnapshot out;
  out.ep = ep;
  out.kind = e.kind;
  out.slot_count = e.slot_count;
  out.slot_size = e.slot_size;
  for (std::size_t i = 0; i < e.inbound.size(); ++i) {
    const auto& ch = e.inbound[i];
    if (!ch) continue;
    ChannelSnapshot c;
    c.index = static_cast<std::uint16_t>(i);
    const auto it = senders.find(ch.get());
    c.remote = it == senders.end();
    if (!c.remote) {
      c.sender_pe = it->second.pe;
      c.sender_ep = it->second.ep;
    }
    c.slots = ch->geometry().slot_count;
    c.slot_size = ch->geometry().slot_size;
    c.queued = ch->queued();
    c.state = std::string(to_string(ch->state()));
    out.channels.push_back(std::move(c));
  }
  return out;
}

EndpointSnapshot memory_snapshot(EpId ep, const NodeEndpoint& e) {
  EndpointSnapshot out;
  out.ep = ep;
  out.kind = e.kind;
  out.memory_pe = e.memory.target_pe;
  out.memory_node = e.memory.node;
  out.memory_offset = e.memory.offset;
  out.memory_size = e.memory.size;
  out.memory_perms = e.memory.perms;
  return out;
}

}  // namespace

NodeSnapshot NodeCore::snapshot() const {
  const auto now = Clock::now();
  NodeSnapshot s;
  s.node_id = config_.node_id;
  s.first_pe = config_.first_pe;
  s.pe_count = config_.pe_count;
  s.endpoints_per_pe = config_.endpoints_per_pe;
  s.bridge_port = bridge_port();
  s.sealed = config_.cluster_key.has_value();
  s.uptime_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now - started_).count());
  s.stats = stats();
  // Which local send endpoint feeds each channel (the others come over the bridge).
  std::map<const SharedChannel*, Sender> senders;
  for (std::uint32_t i = 0; i < pes_.size(); ++i) {
    const auto& eps = pes_[i].endpoints;
    for (std::size_t ep = 0; ep < eps.size(); ++ep) {
      const auto& e = eps[ep];
      if (e.kind != EndpointKind::kSend) continue;
      if (e.request) senders[e.request.get()] = {global_id(i), static_cast<EpId>(ep)};
      // A reply channel is fed by the receiver of the requests.
      if (e.reply) senders[e.reply.get()] = {e.send.target_pe, e.send.target_ep};
    }
  }
  for (std::uint32_t i = 0; i < pes_.size(); ++i) {
    const auto& p = pes_[i];
    if (!p.used && !p.alive) continue;
    PeSnapshot pe;
    pe.id = global_id(i);
    pe.pid = p.pid;
    pe.alive = p.alive;
    pe.privileged = p.privileged;
    pe.vpe = p.vpe;
    pe.exit_code = p.exit_code;
    if (p.privileged && p.page.valid()) pe.published = p.page.published();
    for (std::size_t ep = 0; ep < p.endpoints.size(); ++ep) {
      const auto& e = p.endpoints[ep];
      const auto id = static_cast<EpId>(ep);
      switch (e.kind) {
        case EndpointKind::kSend: pe.endpoints.push_back(send_snapshot(id, e)); break;
        case EndpointKind::kReceive: pe.endpoints.push_back(receive_snapshot(id, e, senders)); break;
        case EndpointKind::kMemory: pe.endpoints.push_back(memory_snapshot(id, e)); break;
        case EndpointKind::kInvalid: break;
      }
    }
    s.pes.push_back(std::move(pe));
  }
  if (bridge_) bridge_->add_peers(s, now);
  return s;
}

bool NodeCore::privileged(PeId pe) const {
  const auto index = index_of(pe);
  return index && pes_[*index].privileged;
}

std::vector<TapPoint> NodeCore::tap_points() const {
  std::vector<TapPoint> out;
  for (std::uint32_t i = 0; i < pes_.size(); ++i) {
    const auto& p = pes_[i];
    if (!p.alive) continue;
    for (std::size_t ep = 0; ep < p.endpoints.size(); ++ep) {
      const auto& e = p.endpoints[ep];
      if (e.kind != EndpointKind::kSend) continue;
      const bool remote = e.remote_binding != 0;
      const bool target_privileged = !remote && privileged(e.send.target_pe);
      TraceRecordHeader m{};
      m.direction = remote ? TraceDirection::kToPeer : TraceDirection::kLocal;
      m.sender_pe = global_id(i);
      m.sender_ep = static_cast<EpId>(ep);
      m.receiver_pe = e.send.target_pe;
      m.receiver_ep = e.send.target_ep;
      m.flags = static_cast<std::uint8_t>((p.privileged ? kTraceSenderPrivileged : 0) |
                                          (target_privileged ? kTraceReceiverPrivileged : 0));
      if (e.request) out.push_back({e.request, m});
      if (e.reply) {
        TraceRecordHeader r{};
        r.direction = remote ? TraceDirection::kFromPeer : TraceDirection::kLocal;
        r.sender_pe = e.send.target_pe;
        r.sender_ep = e.send.target_ep;
        r.receiver_pe = global_id(i);
        r.receiver_ep = e.send.reply_ep;
        r.flags = static_cast<std::uint8_t>(kTraceReply | (target_privileged ? kTraceSenderPrivileged : 0) |
                                            (p.privileged ? kTraceReceiverPrivileged : 0));
        out.push_back({e.reply, r});
      }
    }
  }
  if (bridge_) bridge_->add_tap_points(out);
  return out;
}

}  // namespace vdtu::dtu
