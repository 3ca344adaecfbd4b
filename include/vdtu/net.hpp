#pragma once
// A local process's port on `vdtu switch`: Ethernet frames in and out through
// two shared-memory rings (vdtu channels, one frame per message) that the
// switch creates and hands over a Unix socket as fds.
//
//   auto port = vdtu::net::SwitchPort::connect("/run/vdtu-switch.sock");
//   port.try_send(frame);                        // kFull: the ring is full
//   port.wait_readable(1s);                      // spin, then sleep on a futex
//   std::array<std::span<const std::byte>, 32> frames;
//   std::uint32_t got = 0;
//   port.try_receive_burst(frames, got);         // views into the ring ...
//   port.release(got);                           // ... until released
//
// The switch trusts nothing the client writes: a client that corrupts its
// rings loses its port (and only its port).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "vdtu/channel.hpp"
#include "vdtu/status.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::net {

inline constexpr std::size_t kEthernetHeaderBytes = 14;  // destination, source, type
inline constexpr std::size_t kVlanTagBytes = 4;          // an 802.1Q tag after the source
inline constexpr std::uint32_t kDefaultMtu = 1500;
inline constexpr std::uint32_t kMinMtu = 68;    // IPv4's minimum
inline constexpr std::uint32_t kMaxMtu = 9000;  // jumbo frames

// The longest frame a port with this MTU carries: header, optional VLAN tag, payload.
constexpr std::uint32_t max_frame_bytes(std::uint32_t mtu) {
  return mtu + static_cast<std::uint32_t>(kEthernetHeaderBytes + kVlanTagBytes);
}

struct MacAddress {
  std::array<std::uint8_t, 6> octets{};

  // "02:00:00:00:00:01" (or with '-'); nothing for anything else.
  static std::optional<MacAddress> parse(std::string_view text);
  static MacAddress from_bytes(std::span<const std::byte, 6> bytes);
  static constexpr MacAddress broadcast() { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
  // The 48 bits as an integer, first octet most significant.
  [[nodiscard]] std::uint64_t value() const;

  [[nodiscard]] std::string to_string() const;
  // Group addresses (broadcast included) have the lowest bit of the first octet set.
  [[nodiscard]] bool is_multicast() const { return (octets[0] & 1U) != 0; }
  [[nodiscard]] bool is_zero() const { return value() == 0; }
  bool operator==(const MacAddress&) const = default;
};

struct PortRequest {
  // A port the switch's configuration names (its MTU, MAC and allow-list come
  // from there); empty for an anonymous port with the switch's defaults.
  std::string name;
};

// What the switch said about the port it made.
struct PortInfo {
  std::uint32_t id = 0;
  std::string name;
  std::uint32_t mtu = kDefaultMtu;
  std::optional<MacAddress> mac;  // the address configured for this port, if any
};

class SwitchPort {
 public:
  // Connects to the switch's Unix socket (SOCK_SEQPACKET) and attaches the
  // port's two rings. Throws std::runtime_error with the switch's reason when
  // it refuses (unknown or busy name, no free port) or cannot be reached.
  static SwitchPort connect(const std::string& socket_path, const PortRequest& request = {});

  SwitchPort(SwitchPort&&) noexcept;
  SwitchPort& operator=(SwitchPort&&) noexcept;
  SwitchPort(const SwitchPort&) = delete;
  SwitchPort& operator=(const SwitchPort&) = delete;
  ~SwitchPort();  // closes the port: the switch forwards what was sent, then drops the port

  [[nodiscard]] const PortInfo& info() const;
  [[nodiscard]] std::uint32_t max_frame_bytes() const { return net::max_frame_bytes(info().mtu); }

  // --- to the switch (call from one thread at a time) ---
  // One frame. kFull when the ring is full, kTooLarge over max_frame_bytes(),
  // kTerminated/kBroken when the switch closed the port.
  Status try_send(std::span<const std::byte> frame);
  // A prefix of `frames` with one publication; `sent` says how many.
  Status try_send_burst(std::span<const std::span<const std::byte>> frames, std::uint32_t& sent);
  // Waits (spin, then futex) until a frame fits.
  Status wait_writable(std::chrono::nanoseconds timeout, WaitPolicy policy = {});

  // --- from the switch (call from one thread at a time) ---
  // Up to out.size() frames; each view stays valid until release() frees it
  // (oldest first). kEmpty when nothing is there.
  Status try_receive_burst(std::span<std::span<const std::byte>> out, std::uint32_t& got);
  Status release(std::uint32_t count);
  // "Signal only when needed": polls for policy.spin, then announces sleep,
  // checks again and sleeps; the switch wakes only a sleeper.
  Status wait_readable(std::chrono::nanoseconds timeout, WaitPolicy policy = {});
  // For an event loop: an eventfd that becomes readable when frames arrive
  // after arm_receive_event() returned true (false: frames are there already).
  [[nodiscard]] int receive_event_fd() const;
  bool arm_receive_event();
  void disarm_receive_event();

 private:
  struct Rings;
  SwitchPort(UniqueFd control, PortInfo info, std::unique_ptr<Rings> rings);

  UniqueFd control_;  // held open for the port's lifetime; the switch watches it
  PortInfo info_;
  std::unique_ptr<Rings> rings_;
};

// The counters of the switch at `socket_path` (what `vdtu switch stat`
// prints): a table, or one JSON object. Throws std::runtime_error when the
// switch cannot be reached.
std::string read_switch_report(const std::string& socket_path, bool json = false);

}  // namespace vdtu::net
