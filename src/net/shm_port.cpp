#include "shm_port.hpp"

#include <bit>
#include <stdexcept>

namespace vdtu::net {
namespace {

SharedChannel active_channel(ChannelGeometry g) {
  auto channel = SharedChannel::create(g);
  channel.activate();
  return channel;
}

}  // namespace

ChannelGeometry ShmPort::geometry_for(std::uint32_t mtu, std::uint32_t ring_slots) {
  if (mtu < kMinMtu || mtu > kMaxMtu) {
    throw std::invalid_argument("MTU must be " + std::to_string(kMinMtu) + " to " + std::to_string(kMaxMtu));
  }
  const ChannelGeometry g{ring_slots,
                          std::bit_ceil(max_frame_bytes(mtu) + static_cast<std::uint32_t>(kHeaderSize))};
  if (auto why = g.problem()) throw std::invalid_argument("ring: " + *why);
  return g;
}

ShmPort::ShmPort(std::uint32_t mtu, std::uint32_t ring_slots, UniqueFd control, std::string peer)
    : to_switch_(active_channel(geometry_for(mtu, ring_slots))),
      from_switch_(active_channel(geometry_for(mtu, ring_slots))),
      receiver_(to_switch_),
      sender_(from_switch_),
      control_(std::move(control)),
      peer_(std::move(peer)) {}

ShmPort::~ShmPort() {
  to_switch_.terminate();
  from_switch_.terminate();
}

std::array<int, 4> ShmPort::client_fds() const {
  return {to_switch_.memfd(), to_switch_.eventfd(), from_switch_.memfd(), from_switch_.eventfd()};
}

void ShmPort::fail_on(Status st, const char* ring, std::string_view broken_reason) {
  if (st == Status::kTerminated) {
    fail(std::string("client closed its ") + ring + " ring", false);
  } else if (st == Status::kBroken) {
    fail(std::string("client corrupted its ") + ring + " ring: " + std::string(broken_reason), true);
  } else {
    fail(std::string(ring) + " ring: " + std::string(to_string(st)), true);
  }
}

std::uint32_t ShmPort::receive_burst(std::span<ReceivedFrame> out) {
  std::uint32_t n = 0;
  while (n < out.size()) {
    MessageView m;
    const auto st = receiver_.try_fetch(m);
    if (st == Status::kOk) {
      out[n++].capture(m.payload.data(), m.header.length);
      continue;
    }
    if (st == Status::kEmpty) {
      if (peer_left_ && n == 0) fail("client disconnected", false);
    } else {
      fail_on(st, "to-switch", receiver_.broken_reason());
    }
    break;
  }
  fetched_ += n;
  return n;
}

void ShmPort::release_received() {
  receiver_.ack(fetched_);
  fetched_ = 0;
}

std::uint32_t ShmPort::transmit_burst(std::span<const ReceivedFrame* const> frames) {
  if (frames.empty() || failure()) return 0;
  std::uint32_t granted = 0;
  const auto wanted = static_cast<std::uint32_t>(frames.size());
  if (const auto st = sender_.try_reserve(wanted, granted); st != Status::kOk) {
    if (st != Status::kFull) fail_on(st, "from-switch", sender_.broken_reason());
    return 0;
  }
  std::uint32_t filled = 0;
  for (; filled < granted; ++filled) {
    const auto& f = *frames[filled];
    if (f.length > sender_.max_payload()) break;  // the engine checks the MTU first
    copy_frame(f, sender_.payload_area(filled).data());
    MessageHeader header{};
    header.length = f.length;
    sender_.finish(filled, header);
  }
  if (const auto st = sender_.publish(filled); st != Status::kOk) {
    fail_on(st, "from-switch", sender_.broken_reason());
    return 0;
  }
  return filled;
}

bool ShmPort::arm_wakeup() { return !peer_left_ && receiver_.arm_event(); }

}  // namespace vdtu::net
