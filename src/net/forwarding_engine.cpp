#include "forwarding_engine.hpp"

#include <algorithm>
#include <stdexcept>

namespace vdtu::net {

ForwardingEngine::ForwardingEngine(const EngineSettings& settings)
    : settings_(settings), table_(settings.table) {
  if (settings.max_ports == 0 || settings.max_ports > EngineSettings::kMaxPorts) {
    throw std::invalid_argument("max ports must be 1 to " + std::to_string(EngineSettings::kMaxPorts));
  }
  if (settings.burst == 0 || settings.burst > EngineSettings::kMaxBurst) {
    throw std::invalid_argument("burst must be 1 to " + std::to_string(EngineSettings::kMaxBurst));
  }
  burst_.resize(settings.burst);
  slots_.reserve(settings.max_ports);
}

Seconds ForwardingEngine::seconds_of(Clock::time_point t) {
  return static_cast<Seconds>(std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
}

PortId ForwardingEngine::reserve(PortSettings settings) {
  if (settings.mtu < kMinMtu || settings.mtu > kMaxMtu) {
    throw std::invalid_argument("MTU must be " + std::to_string(kMinMtu) + " to " + std::to_string(kMaxMtu));
  }
  auto free = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.reserved; });
  if (free == slots_.end()) {
    if (slots_.size() >= settings_.max_ports) throw std::runtime_error("no free port (max ports reached)");
    free = slots_.emplace(slots_.end());
  }
  free->allowed.clear();
  for (const auto& mac : settings.allowed_sources) free->allowed.push_back(make_mac_key(mac.value(), 0));
  std::sort(free->allowed.begin(), free->allowed.end());
  free->settings = std::move(settings);
  free->pending.clear();
  free->pending.reserve(settings_.burst);
  free->reserved = true;
  return static_cast<PortId>(free - slots_.begin());
}

void ForwardingEngine::unreserve(PortId id) {
  if (!reserved(id) || slots_[id].port) throw std::logic_error("unreserve: port still attached");
  slots_[id].reserved = false;
}

void ForwardingEngine::attach(PortId id, std::unique_ptr<Port> port) {
  if (!reserved(id) || slots_[id].port) throw std::logic_error("attach: place not free");
  slots_[id].port = std::move(port);
  attached_.push_back(id);
  ++counters_.ports_connected;
}

std::unique_ptr<Port> ForwardingEngine::detach(PortId id) {
  if (!reserved(id)) return nullptr;
  attached_.erase(std::remove(attached_.begin(), attached_.end(), id), attached_.end());
  table_.forget_port(id);
  return std::move(slots_[id].port);
}

bool ForwardingEngine::add_static(const MacAddress& mac, std::uint16_t vlan, PortId id) {
  if (!reserved(id) || mac.is_multicast()) return false;
  return table_.add_static(make_mac_key(mac.value(), vlan), id);
}

bool ForwardingEngine::has_failed_ports() const {
  return std::any_of(attached_.begin(), attached_.end(),
                     [&](PortId id) { return slots_[id].port->failure(); });
}

std::vector<PortId> ForwardingEngine::failed_ports() const {
  std::vector<PortId> failed;
  for (const auto id : attached_) {
    if (slots_[id].port->failure()) failed.push_back(id);
  }
  return failed;
}

std::size_t ForwardingEngine::poll(Clock::time_point now) {
  const auto seconds = seconds_of(now);
  if (seconds != last_expiry_) {
    table_.expire(seconds);
    last_expiry_ = seconds;
  }
  std::size_t taken = 0;
  for (const auto id : attached_) taken += forward_from(id, seconds);  // nobody joins or leaves in a round
  ++counters_.rounds;
  if (taken > 0) ++counters_.busy_rounds;
  return taken;
}

std::size_t ForwardingEngine::forward_from(PortId source, Seconds now) {
  auto& from = slots_[source];
  if (from.port->failure()) return 0;
  const auto n = from.port->receive_burst(burst_);
  if (n == 0) return 0;
  for (std::uint32_t i = 0; i < n; ++i) classify(source, from, burst_[i], now);
  for (const auto destination : touched_) flush(destination);
  touched_.clear();
  from.port->release_received();  // only now: the destinations have copied the frames
  return n;
}

void ForwardingEngine::classify(PortId source, Slot& from, const ReceivedFrame& frame, Seconds now) {
  auto& counters = from.port->counters();
  ++counters.rx_frames;
  counters.rx_bytes += frame.length;
  if (frame.length < kEthernetHeaderBytes) {
    counters.drop(DropReason::kTooShort);
    return;
  }
  const auto header = parse_head(frame);
  const auto link_bytes =
      static_cast<std::uint32_t>(kEthernetHeaderBytes + (header.tagged ? kVlanTagBytes : 0));
  if (frame.length > from.settings.mtu + link_bytes) {
    counters.drop(DropReason::kTooLong);
    return;
  }
  const auto l3_bytes = frame.length - link_bytes;
  if (is_group_address(header.source)) {
    counters.drop(DropReason::kBadSource);
    return;
  }
  const auto source_mac = header.source;
  if (!from.allowed.empty() &&
      !std::binary_search(from.allowed.begin(), from.allowed.end(), make_mac_key(source_mac, 0))) {
    counters.drop(DropReason::kSourceNotAllowed);
    return;
  }
  if (table_.learn(make_mac_key(source_mac, header.vlan), source, now) == LearnOutcome::kPinnedElsewhere) {
    counters.drop(DropReason::kSourcePinned);
    return;
  }
  if (is_group_address(header.destination)) {
    ++counters.flooded;
    flood(source, frame, l3_bytes);
    return;
  }
  const auto destination = table_.lookup(make_mac_key(header.destination, header.vlan), now);
  if (!destination) {
    ++counters.flooded;
    ++counters_.unknown_unicast;
    flood(source, frame, l3_bytes);
  } else if (*destination == source) {
    ++counters.filtered;  // both ends on this port: it has the frame already
  } else if (!slots_[*destination].port) {
    counters.drop(DropReason::kNoDestination);
  } else {
    deliver(*destination, frame, l3_bytes);
  }
}

void ForwardingEngine::flood(PortId source, const ReceivedFrame& frame, std::uint32_t l3_bytes) {
  ++counters_.floods;
  for (const auto destination : attached_) {
    if (destination != source) deliver(destination, frame, l3_bytes);
  }
}

void ForwardingEngine::deliver(PortId destination, const ReceivedFrame& frame, std::uint32_t l3_bytes) {
  auto& to = slots_[destination];
  if (l3_bytes > to.settings.mtu) {
    to.port->counters().drop(DropReason::kOverMtu);
    return;
  }
  if (to.pending.empty()) touched_.push_back(destination);
  to.pending.push_back(&frame);
}

void ForwardingEngine::flush(PortId destination) {
  auto& to = slots_[destination];
  auto& counters = to.port->counters();
  const auto taken = to.port->failure() ? 0 : to.port->transmit_burst(to.pending);
  counters.tx_frames += taken;
  for (std::uint32_t i = 0; i < taken; ++i) counters.tx_bytes += to.pending[i]->length;
  counters.drop(DropReason::kQueueFull, to.pending.size() - taken);
  to.pending.clear();
}

}  // namespace vdtu::net
