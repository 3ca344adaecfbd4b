#include "switch_config.hpp"

#include <fmt/core.h>

#include <bit>
#include <set>
#include <stdexcept>

#include "port_protocol.hpp"

namespace vdtu::net {
namespace {

void check_mtu(std::uint32_t mtu, const std::string& what) {
  if (mtu != 0 && (mtu < kMinMtu || mtu > kMaxMtu)) {
    throw std::invalid_argument(fmt::format("{}: mtu must be {} to {}, got {}", what, kMinMtu, kMaxMtu, mtu));
  }
}

void check_sources(const std::vector<MacAddress>& macs, const std::string& what) {
  for (const auto& mac : macs) {
    if (mac.is_multicast()) {
      throw std::invalid_argument(what + ": allowed source " + mac.to_string() + " is a group address");
    }
  }
}

}  // namespace

void SwitchConfig::validate() const {
  if (socket_path.empty()) throw std::invalid_argument("no socket path");
  if (engine.table.capacity == 0 || engine.table.capacity > MacTableSettings::kMaxCapacity) {
    throw std::invalid_argument(fmt::format("mac_table_size must be 1 to {}, got {}",
                                            MacTableSettings::kMaxCapacity, engine.table.capacity));
  }
  if (engine.table.aging.count() <= 0) throw std::invalid_argument("aging must be at least 1 second");
  if (engine.max_ports == 0 || engine.max_ports > EngineSettings::kMaxPorts) {
    throw std::invalid_argument(fmt::format("max_ports must be 1 to {}", EngineSettings::kMaxPorts));
  }
  if (engine.burst == 0 || engine.burst > EngineSettings::kMaxBurst) {
    throw std::invalid_argument(fmt::format("burst must be 1 to {}", EngineSettings::kMaxBurst));
  }
  if (default_mtu < kMinMtu || default_mtu > kMaxMtu) {
    throw std::invalid_argument(fmt::format("mtu must be {} to {}, got {}", kMinMtu, kMaxMtu, default_mtu));
  }
  if (!std::has_single_bit(ring_slots) || ring_slots < 2 || ring_slots > 65536) {
    throw std::invalid_argument(
        fmt::format("ring_slots must be a power of two from 2 to 65536, got {}", ring_slots));
  }
  if (ports.size() + uplinks.size() + vhost_ports.size() > engine.max_ports) {
    throw std::invalid_argument("more ports and uplinks configured than max_ports");
  }
  std::set<std::string> names;
  for (const auto& p : ports) {
    if (!wire::valid_port_name(p.name)) {
      throw std::invalid_argument("port name must be 1-31 characters of [A-Za-z0-9._-]: '" + p.name + "'");
    }
    if (!names.insert(p.name).second) throw std::invalid_argument("port name used twice: " + p.name);
    check_mtu(p.mtu, "port " + p.name);
    check_sources(p.allowed_sources, "port " + p.name);
    if (p.mac && p.mac->is_multicast())
      throw std::invalid_argument("port " + p.name + ": mac is a group address");
  }
  for (const auto& u : uplinks) {
    if (!wire::valid_port_name(u.name)) {
      throw std::invalid_argument("uplink name must be 1-31 characters of [A-Za-z0-9._-]: '" + u.name + "'");
    }
    if (!names.insert(u.name).second) throw std::invalid_argument("port name used twice: " + u.name);
    if (u.interface.empty() || u.interface.size() >= 16) {
      throw std::invalid_argument("uplink " + u.name + ": interface name must have 1 to 15 characters");
    }
    check_mtu(u.mtu, "uplink " + u.name);
    check_sources(u.allowed_sources, "uplink " + u.name);
    if (!std::has_single_bit(u.ring_frames) || u.ring_frames < 8 || u.ring_frames > 65536) {
      throw std::invalid_argument("uplink " + u.name +
                                  ": ring_frames must be a power of two from 8 to 65536");
    }
  }
  for (const auto& v : vhost_ports) {
    if (!wire::valid_port_name(v.name)) {
      throw std::invalid_argument("vhost-user port name must be 1-31 characters of [A-Za-z0-9._-]: '" +
                                  v.name + "'");
    }
    if (!names.insert(v.name).second) throw std::invalid_argument("port name used twice: " + v.name);
    if (v.path.empty() || v.path.size() >= 108) {
      throw std::invalid_argument("vhost-user port " + v.name +
                                  ": socket path must have 1 to 107 characters");
    }
    check_mtu(v.mtu, "vhost-user port " + v.name);
    check_sources(v.allowed_sources, "vhost-user port " + v.name);
  }
  std::size_t statics = 0;
  for (const auto& p : ports) statics += p.mac ? 1 : 0;
  for (const auto& s : static_entries) {
    if (names.count(s.port) == 0)
      throw std::invalid_argument("static entry names unknown port '" + s.port + "'");
    if (s.mac.is_multicast())
      throw std::invalid_argument("static entry " + s.mac.to_string() + " is a group address");
    if (s.vlan > 4094) throw std::invalid_argument("static entry: vlan must be 0 to 4094");
    ++statics;
  }
  // Learning must keep room: at most half the table may be static.
  if (statics > engine.table.capacity / 2) {
    throw std::invalid_argument("more static entries than half the MAC table (raise mac_table_size)");
  }
}

}  // namespace vdtu::net
