// The control plane: the only code that creates, binds and removes endpoints.
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <bit>
#include <cstring>
#include <utility>

#include "node_bridge.hpp"
#include "node_core.hpp"

namespace vdtu::dtu {
namespace {

constexpr std::uint8_t kMinSlotOrder = 5;          // 32 bytes: a header and a little
constexpr std::uint8_t kMaxSlotOrder = 16;         // 64 KiB
constexpr std::uint8_t kMaxBufferSlotsOrder = 12;  // 4096 slots

Update to_pe(std::uint32_t pe, NodeMessageKind kind, EpId ep) {
  Update u{pe, {}, {}, {}};
  u.message.kind = kind;
  u.message.ep = ep;
  return u;
}

}  // namespace

// Every request is answered, in order with the updates it caused: the answer
// travels through the same queue. (Fds a PE attached were closed unread.)
void NodeCore::serve_control_request(std::uint32_t pe, std::span<const std::byte> bytes) {
  ControlRequest request{};
  if (bytes.size() != sizeof(request)) {
    ++stats_.malformed_requests;
    Update reply = to_pe(pe, NodeMessageKind::kReply, 0);
    reply.message.status = Status::kInvalidArgument;
    queue(std::move(reply));
    return;
  }
  std::memcpy(&request, bytes.data(), sizeof(request));
  answer_request(pe, request, false);
}

bool NodeCore::serve_mailboxes() {
  bool worked = false;
  for (std::uint32_t pe = 0; pe < pes_.size(); ++pe) {
    auto& p = pes_[pe];
    if (!p.alive || !p.privileged || p.condemned) continue;
    if (auto request = p.page.take_request(p.mailbox_seen)) {
      request->request_id = p.mailbox_seen;  // the answer names what was posted
      ++stats_.mailbox_requests;
      answer_request(pe, *request, true);
      worked = true;
    }
  }
  return worked;
}

void NodeCore::answer_request(std::uint32_t pe, const ControlRequest& request, bool in_page) {
  Update reply = to_pe(pe, NodeMessageKind::kReply, 0);
  reply.answer_in_page = in_page;
  reply.message.request_id = request.request_id;
  const bool known = request.magic == kControlMagic && request.op >= ControlOp::kConfigSend &&
                     request.op < ControlOp::kCount;
  if (!known) ++stats_.malformed_requests;
  PeId launched = 0;
  reply.message.status = known ? handle_request(pe, request, launched) : Status::kInvalidArgument;
  reply.message.pe = launched;
  queue(std::move(reply));
}

Update NodeCore::inbound_update(const InboundChannelInfo& info, const std::shared_ptr<SharedChannel>& channel,
                                const std::shared_ptr<SharedChannel>& reply, int reply_doorbell_fd) {
  Update u{info.target, {}, {channel->memfd(), channel->eventfd()}, {channel, reply}};
  auto& m = u.message;
  m.kind = NodeMessageKind::kInboundChannel;
  m.ep = info.ep;
  m.channel = info.index;
  m.slot_count = info.slots;
  m.slot_size = info.slot_size;
  m.sender_pe = info.sender_pe;
  m.sender_ep = info.sender_ep;
  m.sender_vpe = info.sender_vpe;
  m.label = info.label;
  if (reply != nullptr) {
    m.sender_reply_ep = info.sender_reply_ep;
    m.reply_channel = info.reply_index;
    m.reply_slot_count = info.slots;
    m.reply_slot_size = info.reply_slot_size;
    u.fds.insert(u.fds.end(), {reply->memfd(), reply->eventfd(), reply_doorbell_fd});
  }
  return u;
}

Status NodeCore::absent_pe_status(PeId pe) const {
  if (!is_local(pe)) return Status::kInvalidArgument;
  return pes_[static_cast<std::uint16_t>(pe - config_.first_pe)].used ? Status::kPeerGone
                                                                      : Status::kNotConfigured;
}

std::span<std::byte> NodeCore::memory_window(const MemoryConfig& c) {
  std::span<std::byte> whole;
  if (c.target_pe == kGlobalMemoryPe) {
    whole = {global_memory_.data(), global_memory_.size()};
  } else if (auto t = index_of(c.target_pe)) {
    whole = {pes_[*t].memory.data(), pes_[*t].memory.size()};
  } else {
    return {};
  }
  if (c.offset > whole.size() || c.size > whole.size() - c.offset) return {};
  return whole.subspan(c.offset, c.size);
}

Status NodeCore::handle_request(std::uint32_t requester, const ControlRequest& r, PeId& launched) {
  ++stats_.control_requests;
  if (!pes_[requester].privileged) {
    ++stats_.control_denied;
    return Status::kPermissionDenied;
  }
  if (r.op == ControlOp::kLaunch) return launch_command(r, launched);
  if (r.op == ControlOp::kClearMemory) return clear_memory(r.memory);
  const auto target = index_of(r.pe);
  if (!target) return absent_pe_status(r.pe);
  const bool per_endpoint = r.op != ControlOp::kInvalidateAll && r.op != ControlOp::kWake &&
                            r.op != ControlOp::kSetVpe && r.op != ControlOp::kPrivilege;
  if (per_endpoint && r.ep >= pes_[*target].endpoints.size()) return Status::kInvalidArgument;
  switch (r.op) {
    case ControlOp::kConfigSend: return config_send(*target, r.ep, r.send);
    case ControlOp::kConfigReceive: return config_receive(*target, r.ep, r.receive);
    case ControlOp::kConfigMemory: return config_memory(*target, r.ep, r.memory);
    case ControlOp::kInvalidate: invalidate(*target, r.ep, Status::kNotConfigured); return Status::kOk;
    case ControlOp::kInvalidateAll:
      for (std::uint32_t ep = 0; ep < pes_[*target].endpoints.size(); ++ep) {
        invalidate(*target, static_cast<EpId>(ep), Status::kNotConfigured);
      }
      return Status::kOk;
    case ControlOp::kTerminate: terminate(*target, r.ep); return Status::kOk;
    case ControlOp::kWake: pes_[*target].doorbell.wake(); return Status::kOk;
    case ControlOp::kSetVpe: pes_[*target].vpe = r.vpe; return Status::kOk;
    case ControlOp::kPrivilege: pes_[*target].privileged = true; return Status::kOk;
    case ControlOp::kLaunch:
    case ControlOp::kClearMemory:
    case ControlOp::kCount: break;
  }
  ++stats_.malformed_requests;
  return Status::kInvalidArgument;
}

// The command is NUL-separated: program, then its arguments.
Status NodeCore::launch_command(const ControlRequest& r, PeId& launched) {
  if (r.command_length == 0 || r.command_length > kMaxCommand || r.command[r.command_length - 1] != '\0') {
    return Status::kInvalidArgument;
  }
  PeProgram program;
  for (std::size_t at = 0; at < r.command_length;) {
    const std::string word(r.command + at);
    at += word.size() + 1;
    if (program.path.empty()) {
      program.path = word;
    } else {
      program.args.push_back(word);
    }
  }
  try {
    launched = launch(program);
    return Status::kOk;
  } catch (const std::exception& e) {
    spdlog::error("node {}: cannot launch {}: {}", config_.node_id, program.path, e.what());
    return Status::kNoResources;
  }
}

Status NodeCore::config_receive(std::uint32_t pe, EpId ep, const ReceiveConfig& c) {
  if (c.slot_order < kMinSlotOrder || c.slot_order > kMaxSlotOrder || c.buffer_order <= c.slot_order ||
      c.buffer_order - c.slot_order > kMaxBufferSlotsOrder) {
    return Status::kInvalidArgument;
  }
  invalidate(pe, ep, Status::kNotConfigured);
  auto& e = pes_[pe].endpoints[ep];
  e.kind = EndpointKind::kReceive;
  e.slot_size = 1U << c.slot_order;
  e.slot_count = 1U << (c.buffer_order - c.slot_order);
  e.inbound.clear();
  auto u = to_pe(pe, NodeMessageKind::kReceiveEndpoint, ep);
  u.message.slot_count = e.slot_count;
  u.message.slot_size = e.slot_size;
  queue(std::move(u));
  return Status::kOk;
}

std::optional<std::uint16_t> NodeCore::reserve_inbound(NodeEndpoint& ep) {
  for (std::uint32_t i = 0; i < kChannelsPerEndpoint; ++i) {
    if (!ep.used.test(i)) {
      ep.used.set(i);
      return static_cast<std::uint16_t>(i);
    }
  }
  return std::nullopt;
}

Status NodeCore::bind_channels(const BindingSpec& spec, BoundChannels& out) {
  auto* requests_to =
      spec.requests_to ? &pes_[spec.requests_to->pe].endpoints[spec.requests_to->ep] : nullptr;
  auto* replies_to =
      spec.replies && spec.replies_to ? &pes_[spec.replies_to->pe].endpoints[spec.replies_to->ep] : nullptr;
  std::optional<std::uint16_t> request_index;
  std::optional<std::uint16_t> reply_index;
  const auto roll_back = [&] {
    if (request_index) requests_to->used.reset(*request_index);
    if (reply_index) replies_to->used.reset(*reply_index);
    out = {};
    return Status::kNoResources;
  };
  if (requests_to != nullptr && !(request_index = reserve_inbound(*requests_to))) return roll_back();
  if (replies_to != nullptr && !(reply_index = reserve_inbound(*replies_to))) return roll_back();
  try {
    out.request = channel_pool_.take({spec.slots, spec.request_slot_size});
    if (spec.replies) out.reply = channel_pool_.take({spec.slots, spec.reply_slot_size});
  } catch (const std::exception& e) {
    spdlog::error("node {}: cannot create a channel: {}", config_.node_id, e.what());
    return roll_back();
  }
  if (request_index) requests_to->set_inbound(*request_index, out.request);
  if (reply_index) replies_to->set_inbound(*reply_index, out.reply);
  out.request_index = request_index.value_or(0);
  out.reply_index = reply_index.value_or(0);
  stats_.channels_created += spec.replies ? 2 : 1;
  return Status::kOk;
}

bool NodeCore::reply_endpoint_ready(std::uint32_t pe, const SendConfig& c) const {
  if (c.reply_ep == kNoReplyEp) return true;
  const auto& r = pes_[pe].endpoints[c.reply_ep];
  return r.kind == EndpointKind::kReceive && !r.terminated;
}

Status NodeCore::config_send(std::uint32_t pe, EpId ep, const SendConfig& c) {
  if (!is_local(c.target_pe)) return bridge_ ? bridge_->connect_send(pe, ep, c) : Status::kInvalidArgument;
  if (c.target_ep >= config_.max_endpoints()) return Status::kInvalidArgument;
  const bool wants_reply = c.reply_ep != kNoReplyEp;
  if (wants_reply && c.reply_ep >= pes_[pe].endpoints.size()) return Status::kInvalidArgument;
  if (c.credits == 0) return Status::kInvalidArgument;
  const auto target = index_of(c.target_pe);
  if (!target) return absent_pe_status(c.target_pe);  // a kernel retries one that does not run yet
  if (c.target_ep >= pes_[*target].endpoints.size()) return Status::kInvalidArgument;
  // The target must be a live receive endpoint (the seL4 port binds to nothing).
  const auto& recv = pes_[*target].endpoints[c.target_ep];
  if (recv.kind != EndpointKind::kReceive || recv.terminated) return Status::kNotConfigured;
  if (c.max_msg_size == 0 || c.max_msg_size > recv.slot_size - kHeaderSize) return Status::kTooLarge;
  if (!reply_endpoint_ready(pe, c)) return Status::kNotConfigured;
  if (*target == pe && c.target_ep == ep) return Status::kInvalidArgument;
  invalidate(pe, ep, Status::kNotConfigured);

  const auto reply_slot_size = wants_reply ? pes_[pe].endpoints[c.reply_ep].slot_size : 0;
  const BindingSpec spec{LocalReceiver{*target, c.target_ep},
                         wants_reply,
                         wants_reply ? std::optional(LocalReceiver{pe, c.reply_ep}) : std::nullopt,
                         channel_slots(c.credits, recv.slot_count),
                         recv.slot_size,
                         reply_slot_size};
  BoundChannels bound;
  if (const auto st = bind_channels(spec, bound); st != Status::kOk) return st;

  auto& e = pes_[pe].endpoints[ep];
  e.kind = EndpointKind::kSend;
  e.send = with_credits_for(c, spec.slots);
  e.request = bound.request;
  e.reply = bound.reply;
  e.index_at_target = bound.request_index;
  e.reply_index = bound.reply_index;
  const InboundChannelInfo info{*target,
                                c.target_ep,
                                bound.request_index,
                                spec.slots,
                                spec.request_slot_size,
                                global_id(pe),
                                ep,
                                pes_[pe].vpe,
                                c.label,
                                c.reply_ep,
                                bound.reply_index,
                                reply_slot_size};
  queue(sender_update(pe, ep, e, pes_[*target].doorbell.fd(), pes_[*target].vpe));
  queue(inbound_update(info, bound.request, bound.reply, pes_[pe].doorbell.fd()));
  return Status::kOk;
}

// The sender learns of its endpoint and its reply channel in one update, so it
// can never send before it knows where the replies come back.
Update NodeCore::sender_update(std::uint32_t pe, EpId ep, const NodeEndpoint& e, int target_doorbell_fd,
                               VpeId target_vpe) {
  Update u{pe, {}, {e.request->memfd(), e.request->eventfd(), target_doorbell_fd}, {e.request, e.reply}};
  auto& m = u.message;
  m.kind = NodeMessageKind::kSendEndpoint;
  m.ep = ep;
  m.channel = e.index_at_target;
  m.slot_count = e.request->geometry().slot_count;
  m.slot_size = e.request->geometry().slot_size;
  m.send = e.send;
  if (e.reply) {
    m.reply_channel = e.reply_index;
    m.reply_slot_count = e.reply->geometry().slot_count;
    m.reply_slot_size = e.reply->geometry().slot_size;
    m.sender_pe = e.send.target_pe;  // who the replies come from
    m.sender_ep = e.send.target_ep;
    m.sender_vpe = target_vpe;
    u.fds.insert(u.fds.end(), {e.reply->memfd(), e.reply->eventfd()});
  }
  return u;
}

Status NodeCore::config_memory(std::uint32_t pe, EpId ep, const MemoryConfig& c) {
  if (c.perms == 0 || (c.perms & ~kMemReadWrite) != 0 || c.size == 0) return Status::kInvalidArgument;
  MemoryConfig checked = c;
  if (checked.node == config_.node_id) checked.node = kThisNode;
  if (checked.node != kThisNode) {
    // Another node's memory: that node checks the window on every access.
    if (!bridge_ || !bridge_->reaches(checked.node)) return Status::kInvalidArgument;
    if (c.offset + c.size < c.offset) return Status::kOutOfBounds;
  } else {
    if (c.target_pe != kGlobalMemoryPe && !index_of(c.target_pe)) return Status::kInvalidArgument;
    if (memory_window(c).empty()) return Status::kOutOfBounds;
  }
  invalidate(pe, ep, Status::kNotConfigured);
  auto& e = pes_[pe].endpoints[ep];
  e.kind = EndpointKind::kMemory;
  e.memory = checked;
  auto u = to_pe(pe, NodeMessageKind::kMemoryEndpoint, ep);
  u.message.memory = c;
  queue(std::move(u));
  return Status::kOk;
}

void NodeCore::release_inbound(std::uint32_t pe, EpId ep, std::uint16_t index) {
  auto& e = pes_[pe].endpoints[ep];
  if (e.kind != EndpointKind::kReceive) return;
  if (auto* ch = e.inbound_at(index)) ch->terminate();
  if (index < e.inbound.size()) e.inbound[index].reset();
  e.used.reset(index);
  auto u = to_pe(pe, NodeMessageKind::kChannelGone, ep);
  u.message.channel = index;
  queue(std::move(u));
}

void NodeCore::invalidate(std::uint32_t pe, EpId ep, Status reason) {
  auto& e = pes_[pe].endpoints[ep];
  const auto kind = e.kind;
  if (kind == EndpointKind::kInvalid) return;
  if (kind == EndpointKind::kSend) {
    if (e.remote_binding != 0) {
      bridge_->disconnect_send(e.remote_binding);
    } else if (auto t = index_of(e.send.target_pe)) {
      release_inbound(*t, e.send.target_ep, e.index_at_target);
    }
    if (e.request) e.request->terminate();
    if (e.reply) {
      e.reply->terminate();
      release_inbound(pe, e.send.reply_ep, e.reply_index);
    }
  }
  if (kind == EndpointKind::kReceive) {
    // Every sender bound here loses its endpoint, and says why.
    const PeId self = global_id(pe);
    for (std::uint32_t s = 0; s < pes_.size(); ++s) {
      if (!pes_[s].alive && s != pe) continue;
      for (std::uint32_t sep = 0; sep < pes_[s].endpoints.size(); ++sep) {
        const auto& se = pes_[s].endpoints[sep];
        if (se.kind == EndpointKind::kSend && se.remote_binding == 0 && se.send.target_pe == self &&
            se.send.target_ep == ep) {
          invalidate(s, static_cast<EpId>(sep), reason);
        }
      }
    }
    for (auto& ch : e.inbound) {
      if (ch) ch->terminate();
    }
    if (bridge_) bridge_->receiver_gone(pe, ep, reason);
  }
  e = NodeEndpoint{};
  auto u = to_pe(pe, NodeMessageKind::kEndpointGone, ep);
  u.message.status = reason;
  queue(std::move(u));
}

void NodeCore::terminate(std::uint32_t pe, EpId ep) {
  auto& e = pes_[pe].endpoints[ep];
  e.terminated = true;
  if (e.kind == EndpointKind::kSend && e.request) e.request->terminate();
  if (e.kind == EndpointKind::kReceive) {
    for (auto& ch : e.inbound) {
      if (ch) ch->terminate();
    }
  }
}

}  // namespace vdtu::dtu
