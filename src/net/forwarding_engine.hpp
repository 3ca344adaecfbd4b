#pragma once
// The switch's data path, one thread: take a burst from each port in turn,
// check and learn from each frame, and hand it to its destination port (or
// flood it), then let every destination copy its frames in one batch.
//
// Rules (IEEE 802.1D learning bridge, per VLAN):
// - frames under 14 bytes or over the source port's MTU (+ header, + tag)
//   are dropped and counted, never truncated;
// - a group address as source is dropped; so is a source off the port's
//   allow-list, or a static address of another port;
// - the source is learned (per VLAN): new, refreshed, or moved to this port;
// - broadcast, multicast and unknown unicast go to every other port;
// - a frame is never sent back to the port it came from;
// - a destination whose queue is full loses that frame (counted there); no
//   port ever waits for another.
// Time comes in with every call, so tests can age entries at will.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "mac_table.hpp"
#include "port.hpp"
#include "port_counters.hpp"

namespace vdtu::net {

struct PortSettings {
  std::string name;
  std::uint32_t mtu = kDefaultMtu;
  std::vector<MacAddress> allowed_sources;  // empty: any unicast source
};

struct EngineSettings {
  static constexpr std::uint32_t kMaxPorts = 1024;
  static constexpr std::uint32_t kMaxBurst = 256;
  MacTableSettings table;
  std::uint32_t max_ports = 64;
  std::uint32_t burst = 32;  // frames taken from one port at a time
};

class ForwardingEngine {
 public:
  using Clock = std::chrono::steady_clock;

  // Throws std::invalid_argument for settings out of range.
  explicit ForwardingEngine(const EngineSettings& settings);

  // A place for a port, with its settings; named ports from the configuration
  // keep theirs while no client is connected. Throws std::runtime_error
  // when all max_ports places are taken.
  PortId reserve(PortSettings settings);
  // Frees a place (after detach()).
  void unreserve(PortId id);
  void attach(PortId id, std::unique_ptr<Port> port);
  // Takes the port out; its learned addresses are forgotten at once.
  std::unique_ptr<Port> detach(PortId id);
  // False when the table has no room or the address is static elsewhere.
  bool add_static(const MacAddress& mac, std::uint16_t vlan, PortId id);

  // One round over every attached port. Returns the frames taken in.
  std::size_t poll(Clock::time_point now);
  // Ports whose failure() is set (the caller logs and detaches them).
  [[nodiscard]] bool has_failed_ports() const;
  [[nodiscard]] std::vector<PortId> failed_ports() const;

  [[nodiscard]] bool reserved(PortId id) const { return id < slots_.size() && slots_[id].reserved; }
  [[nodiscard]] Port* port(PortId id) const { return reserved(id) ? slots_[id].port.get() : nullptr; }
  [[nodiscard]] const PortSettings& settings(PortId id) const { return slots_.at(id).settings; }
  [[nodiscard]] std::size_t place_count() const { return slots_.size(); }
  [[nodiscard]] const std::vector<PortId>& attached() const { return attached_; }
  [[nodiscard]] const MacTable& table() const { return table_; }
  [[nodiscard]] const SwitchCounters& counters() const { return counters_; }
  SwitchCounters& counters() { return counters_; }
  // Whole seconds of the engine's clock, as the table sees them.
  static Seconds seconds_of(Clock::time_point t);

 private:
  struct Slot {
    PortSettings settings;
    std::vector<MacKey> allowed;  // allow-list as sorted table keys (VLAN 0)
    std::unique_ptr<Port> port;
    std::vector<const ReceivedFrame*> pending;  // frames for this port in this round
    bool reserved = false;
  };

  std::size_t forward_from(PortId source, Seconds now);
  void classify(PortId source, Slot& from, const ReceivedFrame& frame, Seconds now);
  void flood(PortId source, const ReceivedFrame& frame, std::uint32_t l3_bytes);
  void deliver(PortId destination, const ReceivedFrame& frame, std::uint32_t l3_bytes);
  void flush(PortId destination);

  EngineSettings settings_;
  MacTable table_;
  std::vector<Slot> slots_;
  std::vector<PortId> attached_;
  std::vector<PortId> touched_;  // destinations with pending frames
  std::vector<ReceivedFrame> burst_;
  Seconds last_expiry_ = 0;
  SwitchCounters counters_;
};

}  // namespace vdtu::net
