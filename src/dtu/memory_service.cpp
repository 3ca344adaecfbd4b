// The node's memory service: carries out memory-endpoint reads and writes for
// PEs, after checking the endpoint's window and permissions in the node's own
// table. PEs never map memory they were not given outright.
#include <chrono>
#include <cstring>

#include "channel/spin_then_sleep.hpp"
#include "node_state.hpp"

namespace vdtu::dtu {
namespace {

// Longer than a sleeping PE needs to wake up and send its next request (tens
// of µs in a VM); a shorter window makes every request find us asleep.
constexpr auto kSpinAfterWork = std::chrono::microseconds(200);

Status check_access(const NodeEndpoint& e, const MemoryRequest& r, std::size_t window_size) {
  if (e.kind != EndpointKind::kMemory) return Status::kNotConfigured;
  const auto needed = r.op == MemoryOp::kRead ? kMemRead : kMemWrite;
  if ((e.memory.perms & needed) == 0) return Status::kPermissionDenied;
  if (r.offset > window_size || r.length > window_size - r.offset) return Status::kOutOfBounds;
  return Status::kOk;
}

}  // namespace

void NodeState::serve_memory() {
  std::array<std::uint64_t, kPendingWords> pending{};
  std::vector<std::byte> response;
  detail::PollAfterWork idle(kSpinAfterWork);
  while (!stopping.load(std::memory_order_acquire)) {
    service_doorbell.take_pending(0, pending);
    bool worked = false;
    {
      std::lock_guard lock(mutex);
      for (std::uint32_t pe = 0; pe < pes.size() && pe < kChannelsPerEndpoint; ++pe) {
        const std::uint64_t bit = std::uint64_t{1} << (pe % 64);
        if ((pending[pe / 64] & bit) == 0) continue;
        auto& p = pes[pe];
        if (!p.alive || !p.memory_in) {
          pending[pe / 64] &= ~bit;
          continue;
        }
        // Take a request only when its answer has room: nothing is dropped,
        // a PE that does not read its answers just stops being served.
        std::uint32_t room = 0;
        if (p.memory_out->try_reserve(1, room) != Status::kOk) continue;
        MessageView m;
        if (p.memory_in->try_fetch(m) != Status::kOk) {
          pending[pe / 64] &= ~bit;
          continue;
        }
        worked = true;
        ++stats.memory_requests;
        MemoryRequest r{};
        Status st = Status::kInvalidArgument;
        std::span<const std::byte> data;
        if (m.payload.size() >= sizeof(r)) {
          std::memcpy(&r, m.payload.data(), sizeof(r));
          data = m.payload.subspan(sizeof(r));
          st = r.ep < p.endpoints.size() ? Status::kOk : Status::kInvalidArgument;
        }
        std::span<std::byte> window;
        if (st == Status::kOk) {
          const auto& e = p.endpoints[r.ep];
          window = e.kind == EndpointKind::kMemory ? memory_window(e.memory) : std::span<std::byte>{};
          st = check_access(e, r, window.size());
          if (st == Status::kOk && e.kind == EndpointKind::kMemory && window.empty()) st = Status::kPeerGone;
        }
        if (st == Status::kOk && r.op == MemoryOp::kWrite && data.size() != r.length)
          st = Status::kInvalidArgument;
        if (st == Status::kOk && r.op == MemoryOp::kRead && r.length + 1 > p.memory_out->max_payload()) {
          st = Status::kTooLarge;
        }
        if (st != Status::kOk) ++stats.memory_rejected;
        response.assign(1, static_cast<std::byte>(st));
        if (st == Status::kOk && r.op == MemoryOp::kWrite)
          std::memcpy(window.data() + r.offset, data.data(), r.length);
        if (st == Status::kOk && r.op == MemoryOp::kRead) {
          response.insert(response.end(), window.begin() + static_cast<std::ptrdiff_t>(r.offset),
                          window.begin() + static_cast<std::ptrdiff_t>(r.offset + r.length));
        }
        MessageHeader h{};
        h.flags = kFlagReply;
        h.label = m.header.replylabel;
        p.memory_in->ack();
        p.memory_out->try_send(h, response);
      }
    }
    if (idle.poll_again(worked)) continue;
    service_doorbell.sleep(
        kRescanInterval, [&] { return !service_doorbell.anything_pending(service_doorbell.config_epoch()); });
    for (auto& w : pending) w = ~std::uint64_t{0};  // rescan after every sleep
  }
}

}  // namespace vdtu::dtu
