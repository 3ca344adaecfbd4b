// The node's memory service: carries out memory-endpoint reads and writes for
// PEs, after checking the endpoint's window and permissions in the node's own
// table. PEs never map memory they were not given outright. An endpoint on
// another node's memory is checked here too, then carried out by that node
// (through both bridges); the PE gets its answer when it comes back.
#include <chrono>
#include <cstring>

#include "node_bridge.hpp"
#include "node_core.hpp"

namespace vdtu::dtu {
namespace {

Status check_access(const NodeEndpoint& e, const MemoryRequest& r, std::size_t window_size) {
  if (e.kind != EndpointKind::kMemory) return Status::kNotConfigured;
  const auto needed = r.op == MemoryOp::kRead ? kMemRead : kMemWrite;
  if ((e.memory.perms & needed) == 0) return Status::kPermissionDenied;
  if (r.offset > window_size || r.length > window_size - r.offset) return Status::kOutOfBounds;
  return Status::kOk;
}

}  // namespace

void NodeCore::answer_memory(std::uint32_t pe, std::uint64_t replylabel, Status st,
                             std::span<const std::byte> data) {
  auto& p = pes_[pe];
  if (!p.alive || !p.memory_out) return;  // it died meanwhile
  if (st != Status::kOk) ++stats_.memory_rejected;
  std::vector<std::byte> response(1 + data.size());
  response[0] = static_cast<std::byte>(st);
  if (!data.empty()) std::memcpy(response.data() + 1, data.data(), data.size());
  MessageHeader h{};
  h.flags = kFlagReply;
  h.label = replylabel;
  p.memory_out->try_send(h, response);  // room was reserved before the request was taken
}

bool NodeCore::serve_memory_request(std::uint32_t pe) {
  auto& p = pes_[pe];
  // Take a request only when its answer has room: nothing is dropped, a PE
  // that does not read its answers just stops being served.
  std::uint32_t room = 0;
  if (p.memory_remote_pending || p.memory_out->try_reserve(1, room) != Status::kOk) return false;
  MessageView m;
  if (p.memory_in->try_fetch(m) != Status::kOk) return false;
  ++stats_.memory_requests;
  const std::uint64_t replylabel = m.header.replylabel;
  MemoryRequest r{};
  Status st = Status::kInvalidArgument;
  std::span<const std::byte> data;
  if (m.payload.size() >= sizeof(r)) {
    std::memcpy(&r, m.payload.data(), sizeof(r));
    data = m.payload.subspan(sizeof(r));
    // An op other than read or write was answered kOk, having done nothing.
    const bool known_op = r.op == MemoryOp::kRead || r.op == MemoryOp::kWrite;
    st = r.ep < p.endpoints.size() && known_op ? Status::kOk : Status::kInvalidArgument;
  }
  const NodeEndpoint* e = st == Status::kOk ? &p.endpoints[r.ep] : nullptr;
  const bool remote = e != nullptr && e->kind == EndpointKind::kMemory && e->memory.node != kThisNode;
  std::span<std::byte> window;
  if (e != nullptr && e->kind == EndpointKind::kMemory && !remote) window = memory_window(e->memory);
  if (st == Status::kOk) st = check_access(*e, r, remote ? e->memory.size : window.size());
  if (st == Status::kOk && !remote && window.empty()) st = Status::kPeerGone;
  if (st == Status::kOk && r.op == MemoryOp::kWrite && data.size() != r.length) st = Status::kInvalidArgument;
  if (st == Status::kOk && r.op == MemoryOp::kRead && r.length + 1 > p.memory_out->max_payload()) {
    st = Status::kTooLarge;
  }
  if (st == Status::kOk && remote) {
    st = bridge_ ? bridge_->forward_memory(pe, e->memory, r, data, replylabel) : Status::kPeerGone;
    if (st == Status::kOk) {
      p.memory_remote_pending = true;  // the bridge answers
      p.memory_in->ack();
      return true;
    }
  }
  std::span<const std::byte> read;
  if (st == Status::kOk && r.op == MemoryOp::kWrite)
    std::memcpy(window.data() + r.offset, data.data(), r.length);
  if (st == Status::kOk && r.op == MemoryOp::kRead) read = window.subspan(r.offset, r.length);
  answer_memory(pe, replylabel, st, read);
  p.memory_in->ack();
  return true;
}

// One round over the PEs: a request is taken when its answer has room, so
// nothing is dropped; a PE that does not read its answers is not served.
bool NodeCore::serve_memory() {
  bool worked = false;
  for (std::uint32_t pe = 0; pe < pes_.size(); ++pe) {
    auto& p = pes_[pe];
    if (!p.alive || p.memory_remote_pending || p.memory_in->available() == 0) continue;
    worked = serve_memory_request(pe) || worked;
  }
  return worked;
}

}  // namespace vdtu::dtu
