// The control plane: the only code that creates, binds and removes endpoints.
#include <fmt/core.h>
#include <csignal>

#include <bit>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "fd_socket.hpp"
#include "node_bridge.hpp"
#include "node_state.hpp"

namespace vdtu::dtu {
namespace {

constexpr std::uint8_t kMinSlotOrder = 5;          // 32 bytes: a header and a little
constexpr std::uint8_t kMaxSlotOrder = 16;         // 64 KiB
constexpr std::uint8_t kMaxBufferSlotsOrder = 12;  // 4096 slots

}  // namespace

std::uint32_t channel_slots(std::uint32_t credits, std::uint32_t receive_slots) {
  const std::uint32_t wanted =
      credits == kCreditsUnlimited ? receive_slots : std::min(credits, receive_slots);
  return std::max<std::uint32_t>(2, std::bit_ceil(wanted));
}

std::shared_ptr<SharedChannel> make_channel(std::uint32_t slots, std::uint32_t slot_size) {
  auto ch = std::make_shared<SharedChannel>(SharedChannel::create({slots, slot_size}));
  ch->activate();
  return ch;
}

Update NodeState::inbound_update(const InboundChannelInfo& info,
                                 const std::shared_ptr<SharedChannel>& channel,
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

NodeState::NodeState(NodeConfig c) : config(std::move(c)) {}

std::optional<std::uint32_t> NodeState::index_of(PeId pe) const {
  const std::uint32_t index = static_cast<std::uint16_t>(pe - config.first_pe);
  if (index >= pes.size() || !pes[index].alive) return std::nullopt;
  return index;
}

Status NodeState::absent_pe_status(PeId pe) const {
  if (!is_local(pe)) return Status::kInvalidArgument;
  return pes[static_cast<std::uint16_t>(pe - config.first_pe)].pid > 0 ? Status::kPeerGone
                                                                       : Status::kNotConfigured;
}

std::span<std::byte> NodeState::memory_window(const MemoryConfig& c) {
  std::span<std::byte> whole;
  if (c.target_pe == kGlobalMemoryPe) {
    whole = {global_memory.data(), global_memory.size()};
  } else if (auto t = index_of(c.target_pe)) {
    whole = {pes[*t].memory.data(), pes[*t].memory.size()};
  } else {
    return {};
  }
  if (c.offset > whole.size() || c.size > whole.size() - c.offset) return {};
  return whole.subspan(c.offset, c.size);
}

Status NodeState::handle_request(std::uint32_t requester, const ControlRequest& r,
                                 std::vector<Update>& updates, PeId& launched) {
  ++stats.control_requests;
  if (!pes[requester].privileged) {
    ++stats.control_denied;
    return Status::kPermissionDenied;
  }
  const auto target = index_of(r.pe);
  if (!target) return absent_pe_status(r.pe);
  const bool per_endpoint = r.op != ControlOp::kInvalidateAll && r.op != ControlOp::kWake &&
                            r.op != ControlOp::kSetVpe && r.op != ControlOp::kPrivilege &&
                            r.op != ControlOp::kLaunch && r.op != ControlOp::kClearMemory;
  if (per_endpoint && r.ep >= config.endpoints_per_pe) return Status::kInvalidArgument;
  switch (r.op) {
    case ControlOp::kConfigSend: return config_send(*target, r.ep, r.send, updates);
    case ControlOp::kConfigReceive: return config_receive(*target, r.ep, r.receive, updates);
    case ControlOp::kConfigMemory: return config_memory(*target, r.ep, r.memory, updates);
    case ControlOp::kInvalidate:
      invalidate(*target, r.ep, Status::kNotConfigured, updates);
      return Status::kOk;
    case ControlOp::kInvalidateAll:
      for (std::uint32_t ep = 0; ep < config.endpoints_per_pe; ++ep) {
        invalidate(*target, static_cast<EpId>(ep), Status::kNotConfigured, updates);
      }
      return Status::kOk;
    case ControlOp::kTerminate: terminate(*target, r.ep); return Status::kOk;
    case ControlOp::kWake: pes[*target].doorbell.bump_epoch(); return Status::kOk;
    case ControlOp::kSetVpe: pes[*target].vpe = r.vpe; return Status::kOk;
    case ControlOp::kPrivilege: pes[*target].privileged = true; return Status::kOk;
    case ControlOp::kLaunch: return launch_command(r, launched);
    case ControlOp::kClearMemory: return clear_memory(r.memory);
    case ControlOp::kCount: break;
  }
  ++stats.malformed_requests;
  return Status::kInvalidArgument;
}

// The command is NUL-separated: program, then its arguments.
Status NodeState::launch_command(const ControlRequest& r, PeId& launched) {
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
    launched = launch_locked(program);
    return Status::kOk;
  } catch (const std::exception& e) {
    fmt::print(stderr, "vdtu node: cannot launch {}: {}\n", program.path, e.what());
    return Status::kNoResources;
  }
}

Status NodeState::config_receive(std::uint32_t pe, EpId ep, const ReceiveConfig& c,
                                 std::vector<Update>& updates) {
  if (c.slot_order < kMinSlotOrder || c.slot_order > kMaxSlotOrder || c.buffer_order <= c.slot_order ||
      c.buffer_order - c.slot_order > kMaxBufferSlotsOrder) {
    return Status::kInvalidArgument;
  }
  invalidate(pe, ep, Status::kNotConfigured, updates);
  auto& e = pes[pe].endpoints[ep];
  e.kind = EndpointKind::kReceive;
  e.slot_size = 1U << c.slot_order;
  e.slot_count = 1U << (c.buffer_order - c.slot_order);
  e.inbound.assign(kChannelsPerEndpoint, nullptr);
  Update u{pe, {}, {}, {}};
  u.message.kind = NodeMessageKind::kReceiveEndpoint;
  u.message.ep = ep;
  u.message.slot_count = e.slot_count;
  u.message.slot_size = e.slot_size;
  updates.push_back(std::move(u));
  return Status::kOk;
}

std::optional<std::uint16_t> NodeState::allocate_inbound(NodeEndpoint& ep) {
  for (std::uint32_t i = 0; i < kChannelsPerEndpoint; ++i) {
    if (!ep.used.test(i)) {
      ep.used.set(i);
      return static_cast<std::uint16_t>(i);
    }
  }
  return std::nullopt;
}

bool NodeState::reply_endpoint_ready(std::uint32_t pe, const SendConfig& c) const {
  if (c.reply_ep == kNoReplyEp) return true;
  const auto& r = pes[pe].endpoints[c.reply_ep];
  return r.kind == EndpointKind::kReceive && !r.terminated;
}

Status NodeState::config_send(std::uint32_t pe, EpId ep, const SendConfig& c, std::vector<Update>& updates) {
  if (!is_local(c.target_pe)) {
    return bridge ? bridge->connect_send(pe, ep, c, updates) : Status::kInvalidArgument;
  }
  const auto target = index_of(c.target_pe);
  if (!target) return absent_pe_status(c.target_pe);  // a kernel retries one that does not run yet
  if (c.target_ep >= config.endpoints_per_pe) return Status::kInvalidArgument;
  const bool wants_reply = c.reply_ep != kNoReplyEp;
  if (wants_reply && c.reply_ep >= config.endpoints_per_pe) return Status::kInvalidArgument;
  if (c.credits == 0) return Status::kInvalidArgument;
  // The target must be a live receive endpoint (the seL4 port binds to nothing).
  auto& recv = pes[*target].endpoints[c.target_ep];
  if (recv.kind != EndpointKind::kReceive || recv.terminated) return Status::kNotConfigured;
  if (c.max_msg_size == 0 || c.max_msg_size > recv.slot_size - kHeaderSize) return Status::kTooLarge;
  if (!reply_endpoint_ready(pe, c)) return Status::kNotConfigured;
  if (*target == pe && c.target_ep == ep) return Status::kInvalidArgument;
  invalidate(pe, ep, Status::kNotConfigured, updates);

  const auto index = allocate_inbound(recv);
  if (!index) return Status::kNoResources;
  std::optional<std::uint16_t> reply_index;
  if (wants_reply) {
    reply_index = allocate_inbound(pes[pe].endpoints[c.reply_ep]);
    if (!reply_index) {
      recv.used.reset(*index);
      return Status::kNoResources;
    }
  }
  auto& reply_recv = pes[pe].endpoints[wants_reply ? c.reply_ep : 0];
  const auto slots = channel_slots(c.credits, recv.slot_count);
  std::shared_ptr<SharedChannel> request;
  std::shared_ptr<SharedChannel> reply;
  try {
    request = make_channel(slots, recv.slot_size);
    if (wants_reply) reply = make_channel(slots, reply_recv.slot_size);
  } catch (const std::exception& e) {
    fmt::print(stderr, "vdtu node: cannot create a channel: {}\n", e.what());
    recv.used.reset(*index);
    if (reply_index) reply_recv.used.reset(*reply_index);
    return Status::kNoResources;
  }
  stats.channels_created += wants_reply ? 2 : 1;
  recv.inbound[*index] = request;

  auto& e = pes[pe].endpoints[ep];
  e.kind = EndpointKind::kSend;
  e.send = c;
  e.request = request;
  e.reply = reply;
  e.index_at_target = *index;
  e.reply_index = reply_index.value_or(0);
  if (reply) reply_recv.inbound[*reply_index] = reply;

  const InboundChannelInfo info{
      *target, c.target_ep, *index,  slots,      recv.slot_size, global_id(pe),
      ep,      pes[pe].vpe, c.label, c.reply_ep, e.reply_index,  reply_recv.slot_size};
  updates.push_back(sender_update(pe, ep, e, pes[*target].doorbell.fd(), pes[*target].vpe));
  updates.push_back(inbound_update(info, request, reply, pes[pe].doorbell.fd()));
  return Status::kOk;
}

// The sender learns of its endpoint and its reply channel in one update, so it
// can never send before it knows where the replies come back.
Update NodeState::sender_update(std::uint32_t pe, EpId ep, const NodeEndpoint& e, int target_doorbell_fd,
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

Status NodeState::config_memory(std::uint32_t pe, EpId ep, const MemoryConfig& c,
                                std::vector<Update>& updates) {
  if (c.perms == 0 || (c.perms & ~kMemReadWrite) != 0 || c.size == 0) return Status::kInvalidArgument;
  MemoryConfig checked = c;
  if (checked.node == config.node_id) checked.node = kThisNode;
  if (checked.node != kThisNode) {
    // Another node's memory: that node checks the window on every access.
    if (!bridge || !bridge->reaches(checked.node)) return Status::kInvalidArgument;
    if (c.offset + c.size < c.offset) return Status::kOutOfBounds;
  } else {
    if (c.target_pe != kGlobalMemoryPe && !index_of(c.target_pe)) return Status::kInvalidArgument;
    if (memory_window(c).empty()) return Status::kOutOfBounds;
  }
  invalidate(pe, ep, Status::kNotConfigured, updates);
  auto& e = pes[pe].endpoints[ep];
  e.kind = EndpointKind::kMemory;
  e.memory = checked;
  Update u{pe, {}, {}, {}};
  u.message.kind = NodeMessageKind::kMemoryEndpoint;
  u.message.ep = ep;
  u.message.memory = c;
  updates.push_back(std::move(u));
  return Status::kOk;
}

void NodeState::release_inbound(std::uint32_t pe, EpId ep, std::uint16_t index,
                                std::vector<Update>& updates) {
  auto& e = pes[pe].endpoints[ep];
  if (e.kind != EndpointKind::kReceive) return;
  if (e.inbound[index]) e.inbound[index]->terminate();
  e.inbound[index].reset();
  e.used.reset(index);
  if (!pes[pe].alive) return;
  Update u{pe, {}, {}, {}};
  u.message.kind = NodeMessageKind::kChannelGone;
  u.message.ep = ep;
  u.message.channel = index;
  updates.push_back(std::move(u));
}

void NodeState::invalidate(std::uint32_t pe, EpId ep, Status reason, std::vector<Update>& updates) {
  auto& e = pes[pe].endpoints[ep];
  const auto kind = e.kind;
  if (kind == EndpointKind::kInvalid) return;
  if (kind == EndpointKind::kSend) {
    if (e.remote_binding != 0) {
      bridge->disconnect_send(e.remote_binding);
    } else if (auto t = index_of(e.send.target_pe)) {
      release_inbound(*t, e.send.target_ep, e.index_at_target, updates);
    }
    if (e.request) e.request->terminate();
    if (e.reply) {
      e.reply->terminate();
      release_inbound(pe, e.send.reply_ep, e.reply_index, updates);
    }
  }
  if (kind == EndpointKind::kReceive) {
    // Every sender bound here loses its endpoint, and says why.
    const PeId self = global_id(pe);
    for (std::uint32_t s = 0; s < pes.size(); ++s) {
      if (!pes[s].alive && s != pe) continue;
      for (std::uint32_t sep = 0; sep < pes[s].endpoints.size(); ++sep) {
        const auto& se = pes[s].endpoints[sep];
        if (se.kind == EndpointKind::kSend && se.send.target_pe == self && se.send.target_ep == ep) {
          invalidate(s, static_cast<EpId>(sep), reason, updates);
        }
      }
    }
    for (auto& ch : e.inbound) {
      if (ch) ch->terminate();
    }
    if (bridge) bridge->receiver_gone(pe, ep, reason);
  }
  e = NodeEndpoint{};
  if (!pes[pe].alive) return;
  Update u{pe, {}, {}, {}};
  u.message.kind = NodeMessageKind::kEndpointGone;
  u.message.ep = ep;
  u.message.status = reason;
  updates.push_back(std::move(u));
}

void NodeState::terminate(std::uint32_t pe, EpId ep) {
  auto& e = pes[pe].endpoints[ep];
  e.terminated = true;
  if (e.kind == EndpointKind::kSend && e.request) e.request->terminate();
  if (e.kind == EndpointKind::kReceive) {
    for (auto& ch : e.inbound) {
      if (ch) ch->terminate();
    }
  }
}

void NodeState::retire_pe(std::uint32_t index, std::vector<Update>& updates) {
  auto& p = pes[index];
  p.alive = false;
  // Others' send endpoints aimed at the dead PE learn that their peer is gone.
  const PeId self = global_id(index);
  for (std::uint32_t s = 0; s < pes.size(); ++s) {
    if (!pes[s].alive) continue;
    for (std::uint32_t sep = 0; sep < pes[s].endpoints.size(); ++sep) {
      const auto& se = pes[s].endpoints[sep];
      if (se.kind == EndpointKind::kSend && se.send.target_pe == self) {
        invalidate(s, static_cast<EpId>(sep), Status::kPeerGone, updates);
      }
    }
  }
  for (std::uint32_t ep = 0; ep < p.endpoints.size(); ++ep) {
    invalidate(index, static_cast<EpId>(ep), Status::kPeerGone, updates);
  }
  if (p.memory_requests) p.memory_requests->terminate();
  if (p.memory_responses) p.memory_responses->terminate();
  ++stats.pes_exited;
}

void NodeState::deliver(std::vector<Update>& updates) {
  for (auto& u : updates) {
    auto& p = pes[u.pe_index];
    if (!p.alive || p.condemned) continue;
    const auto bytes = std::as_bytes(std::span(&u.message, 1));
    if (!send_with_fds(p.socket.get(), bytes, u.fds)) {
      if (errno == EPIPE || errno == ECONNRESET) continue;  // it exited; its pidfd retires it
      fmt::print(stderr, "vdtu node: PE {} does not take its endpoint updates ({}); killing it\n",
                 global_id(u.pe_index), std::error_code(errno, std::generic_category()).message());
      p.condemned = true;
      ::kill(p.pid, SIGKILL);
      continue;
    }
    p.doorbell.bump_epoch();
  }
  updates.clear();
}

}  // namespace vdtu::dtu
