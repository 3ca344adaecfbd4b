#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/switch_config.hpp"

namespace vdtu::cli {

struct SwitchOptions {
  std::string config_path;  // TOML; the flags below override it
  std::string socket_path;
  std::vector<std::string> uplinks;     // INTERFACE: a port named after it
  std::vector<std::string> ports;       // NAME or NAME=MAC: a named port (with a static address)
  std::vector<std::string> vhost_user;  // NAME=PATH[,client]: a vhost-user port
  std::optional<std::uint32_t> mac_table_size;
  std::optional<std::uint32_t> aging_seconds;
  std::optional<std::uint32_t> mtu;
  std::optional<std::uint32_t> ring_slots;
  std::optional<std::uint32_t> max_ports;
  bool named_only = false;
};

struct SwitchStatOptions {
  std::string socket_path;
  bool json = false;
};

// The switch's configuration: the file (if any), then the flags; checked.
// Throws std::runtime_error (one line per mistake in the file).
net::SwitchConfig switch_config_from(const SwitchOptions& options);

// `vdtu switch`: runs the switch until SIGINT or SIGTERM. Returns the exit code.
int run_switch(const SwitchOptions& options);
// `vdtu switch stat`: prints a running switch's counters.
int run_switch_stat(const SwitchStatOptions& options);

}  // namespace vdtu::cli
