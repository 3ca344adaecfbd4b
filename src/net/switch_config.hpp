#pragma once
// Everything `vdtu switch` is told at start (from flags or a TOML file).

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "forwarding_engine.hpp"

namespace vdtu::net {

// A shared-memory port a client asks for by name.
struct NamedPortConfig {
  std::string name;
  std::uint32_t mtu = 0;                    // 0: the switch's default
  std::optional<MacAddress> mac;            // a static entry on this port, told to the client
  std::vector<MacAddress> allowed_sources;  // empty: any unicast source
};

// An AF_PACKET port on a host interface.
struct UplinkConfig {
  std::string name;
  std::string interface;
  std::uint32_t mtu = 0;             // 0: the interface's
  std::uint32_t ring_frames = 1024;  // per direction, a power of two
  std::vector<MacAddress> allowed_sources;
};

// A vhost-user port: a virtio-net device for a QEMU guest (or DPDK's
// virtio-user) on a Unix stream socket.
struct VhostUserConfig {
  std::string name;
  std::string path;     // the socket
  bool client = false;  // false: the switch listens; true: it connects (and reconnects)
  std::uint32_t mtu = 0;
  std::vector<MacAddress> allowed_sources;
};

struct StaticEntryConfig {
  MacAddress mac;
  std::uint16_t vlan = 0;
  std::string port;  // a named port or uplink
};

struct SwitchConfig {
  std::string socket_path;
  EngineSettings engine;
  std::uint32_t default_mtu = kDefaultMtu;
  std::uint32_t ring_slots = 512;  // per direction and shared-memory port
  bool anonymous_ports = true;     // clients without a port name get a port of their own
  // Busy-poll this long after the last frame before sleeping in epoll.
  std::chrono::microseconds poll_window{200};
  std::vector<NamedPortConfig> ports;
  std::vector<UplinkConfig> uplinks;
  std::vector<VhostUserConfig> vhost_ports;
  std::vector<StaticEntryConfig> static_entries;

  // Throws std::invalid_argument naming the first thing that is wrong.
  void validate() const;
};

}  // namespace vdtu::net
