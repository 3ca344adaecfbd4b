#pragma once
// What the switch counts per port and in total. Written only by the
// forwarding thread, which also answers `vdtu switch stat`; no atomics needed.

#include <array>
#include <cstdint>
#include <string_view>

namespace vdtu::net {

enum class DropReason : std::uint8_t {
  // frames the port's peer sent
  kTooShort,          // under 14 bytes
  kTooLong,           // over the port's MTU plus header (and tag)
  kBadSource,         // a group address as source
  kSourceNotAllowed,  // not on the port's allow-list
  kSourcePinned,      // a static address of another port
  kNoDestination,     // to a static address whose port is not connected
  kUnusable,          // the port could not deliver it whole (e.g. the kernel truncated it)
  kRxOverrun,         // lost before the switch saw it: the port's receive ring was full
  // frames for the port's peer
  kQueueFull,  // the peer's queue was full
  kOverMtu,    // larger than this port's MTU
  kCount,
};
inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::kCount);

constexpr std::string_view to_string(DropReason r) {
  switch (r) {
    case DropReason::kTooShort: return "too_short";
    case DropReason::kTooLong: return "too_long";
    case DropReason::kBadSource: return "bad_source";
    case DropReason::kSourceNotAllowed: return "source_not_allowed";
    case DropReason::kSourcePinned: return "source_pinned";
    case DropReason::kNoDestination: return "no_destination";
    case DropReason::kUnusable: return "unusable";
    case DropReason::kRxOverrun: return "rx_overrun";
    case DropReason::kQueueFull: return "queue_full";
    case DropReason::kOverMtu: return "over_mtu";
    case DropReason::kCount: break;
  }
  return "unknown";
}

struct PortCounters {
  std::uint64_t rx_frames = 0;  // from the peer (every frame, dropped ones too)
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_frames = 0;  // into the peer's queue
  std::uint64_t tx_bytes = 0;
  std::uint64_t flooded = 0;   // frames from this port sent to every other port
  std::uint64_t filtered = 0;  // unicast to an address on this same port: not sent back
  std::array<std::uint64_t, kDropReasonCount> drops{};

  void drop(DropReason r, std::uint64_t n = 1) { drops[static_cast<std::size_t>(r)] += n; }
  [[nodiscard]] std::uint64_t dropped(DropReason r) const { return drops[static_cast<std::size_t>(r)]; }
};

struct SwitchCounters {
  std::uint64_t floods = 0;           // frames flooded (group and unknown destinations)
  std::uint64_t unknown_unicast = 0;  // of those, unicast to an unknown address
  std::uint64_t ports_connected = 0;
  std::uint64_t ports_closed = 0;     // the peer left
  std::uint64_t ports_shut_down = 0;  // the peer misbehaved
  std::uint64_t clients_refused = 0;  // bad requests, unknown or busy names, no room
  std::uint64_t rounds = 0;           // polls of every port by the forwarding loop
  std::uint64_t busy_rounds = 0;      // of those, rounds that moved frames (rounds / busy: how idle it is)
};

}  // namespace vdtu::net
