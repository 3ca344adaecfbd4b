#include "switch_command.hpp"

#include <fmt/core.h>
#include <sys/signalfd.h>

#include <toml++/toml.h>
#include <cerrno>
#include <csignal>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "config_file.hpp"
#include "net/virtual_switch.hpp"
#include "vdtu/net.hpp"

namespace vdtu::cli {
namespace {

net::MacAddress mac_from(std::string_view text, const std::string& where) {
  const auto mac = net::MacAddress::parse(text);
  if (!mac) {
    throw std::runtime_error(
        fmt::format("{}: '{}' is not a MAC address (like 02:00:00:00:00:01)", where, text));
  }
  return *mac;
}

// A MAC address in a file: a mistake (with its place) if it is not one.
std::optional<net::MacAddress> mac_in(ConfigTable& t, std::string_view key, const std::string& text) {
  const auto mac = net::MacAddress::parse(text);
  if (!mac) t.mistake(key, fmt::format("'{}' is not a MAC address (like 02:00:00:00:00:01)", text));
  return mac;
}

std::vector<net::MacAddress> macs_in(ConfigTable& t, std::string_view key) {
  std::vector<net::MacAddress> macs;
  for (const auto& text : t.strings(key)) {
    if (auto mac = mac_in(t, key, text)) macs.push_back(*mac);
  }
  return macs;
}

// NAME=PATH or NAME=PATH,client.
net::VhostUserConfig vhost_from(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
    throw std::runtime_error("--vhost-user " + spec + ": expected NAME=PATH or NAME=PATH,client");
  }
  net::VhostUserConfig v;
  v.name = spec.substr(0, eq);
  v.path = spec.substr(eq + 1);
  if (const auto comma = v.path.rfind(','); comma != std::string::npos) {
    const auto mode = v.path.substr(comma + 1);
    if (mode != "client" && mode != "server") {
      throw std::runtime_error("--vhost-user " + spec + ": mode must be 'client' or 'server', got '" + mode +
                               "'");
    }
    v.client = mode == "client";
    v.path.resize(comma);
  }
  return v;
}

constexpr std::int64_t kMaxAgingSeconds = std::int64_t{7} * 24 * 3600;
constexpr std::int64_t kMaxPollWindowUs = 1'000'000;

void read_switch(ConfigTable& t, net::SwitchConfig& c) {
  if (t.has("socket")) c.socket_path = t.string("socket", c.socket_path);
  c.engine.table.capacity =
      t.integer("mac_table_size", 1, net::MacTableSettings::kMaxCapacity, c.engine.table.capacity);
  c.engine.table.aging =
      std::chrono::seconds(t.integer("aging_seconds", 1, kMaxAgingSeconds, c.engine.table.aging.count()));
  c.engine.max_ports = t.integer("max_ports", 1, net::EngineSettings::kMaxPorts, c.engine.max_ports);
  c.engine.burst = t.integer("burst", 1, net::EngineSettings::kMaxBurst, c.engine.burst);
  c.default_mtu = t.integer("mtu", net::kMinMtu, net::kMaxMtu, c.default_mtu);
  c.ring_slots = t.integer("ring_slots", 2, 65536, c.ring_slots);
  c.poll_window =
      std::chrono::microseconds(t.integer("poll_window_us", 0, kMaxPollWindowUs, c.poll_window.count()));
  c.anonymous_ports = t.boolean("anonymous_ports", c.anonymous_ports);
}

void read_file(const std::string& path, net::SwitchConfig& c) {
  ConfigFile file(path);
  ConfigTable root(file, file.root(), "", {"switch", "port", "uplink", "vhost_user", "static"});
  if (const auto* s = root.table("switch")) {
    ConfigTable t(file, *s, "[switch]",
                  {"socket", "mac_table_size", "aging_seconds", "max_ports", "burst", "mtu", "ring_slots",
                   "poll_window_us", "anonymous_ports"});
    read_switch(t, c);
  }
  each_table(file, root, "port", [&](const toml::table& table, const std::string& name) {
    ConfigTable t(file, table, name, {"name", "mtu", "mac", "allowed_sources"});
    net::NamedPortConfig p;
    p.name = t.string("name", {});
    if (!t.has("name")) t.mistake("name", "missing");
    p.mtu = t.integer("mtu", net::kMinMtu, net::kMaxMtu, p.mtu);
    if (t.has("mac")) p.mac = mac_in(t, "mac", t.string("mac", {}));
    p.allowed_sources = macs_in(t, "allowed_sources");
    c.ports.push_back(std::move(p));
  });
  each_table(file, root, "uplink", [&](const toml::table& table, const std::string& name) {
    ConfigTable t(file, table, name, {"name", "interface", "mtu", "ring_frames", "allowed_sources"});
    net::UplinkConfig u;
    u.interface = t.string("interface", {});
    if (!t.has("interface")) t.mistake("interface", "missing");
    u.name = t.has("name") ? t.string("name", {}) : u.interface;
    u.mtu = t.integer("mtu", net::kMinMtu, net::kMaxMtu, u.mtu);
    u.ring_frames = t.integer("ring_frames", 2, 65536, u.ring_frames);
    u.allowed_sources = macs_in(t, "allowed_sources");
    c.uplinks.push_back(std::move(u));
  });
  each_table(file, root, "vhost_user", [&](const toml::table& table, const std::string& name) {
    ConfigTable t(file, table, name, {"name", "path", "client", "mtu", "allowed_sources"});
    net::VhostUserConfig v;
    v.name = t.string("name", {});
    if (!t.has("name")) t.mistake("name", "missing");
    v.path = t.string("path", {});
    if (!t.has("path")) t.mistake("path", "missing");
    v.client = t.boolean("client", v.client);
    v.mtu = t.integer("mtu", net::kMinMtu, net::kMaxMtu, v.mtu);
    v.allowed_sources = macs_in(t, "allowed_sources");
    c.vhost_ports.push_back(std::move(v));
  });
  each_table(file, root, "static", [&](const toml::table& table, const std::string& name) {
    ConfigTable t(file, table, name, {"mac", "vlan", "port"});
    net::StaticEntryConfig s;
    if (auto mac = mac_in(t, "mac", t.string("mac", {}))) s.mac = *mac;
    s.vlan = t.integer("vlan", 0, 4095, s.vlan);
    s.port = t.string("port", {});
    if (!t.has("port")) t.mistake("port", "missing");
    c.static_entries.push_back(std::move(s));
  });
  file.throw_mistakes();
}

}  // namespace

net::SwitchConfig switch_config_from(const SwitchOptions& o) {
  net::SwitchConfig c;
  if (!o.config_path.empty()) read_file(o.config_path, c);
  if (!o.socket_path.empty()) c.socket_path = o.socket_path;
  if (c.socket_path.empty()) throw std::runtime_error("no socket: give --socket PATH or [switch] socket");
  for (const auto& interface : o.uplinks) c.uplinks.push_back({interface, interface, 0, 1024, {}});
  for (const auto& spec : o.ports) {
    net::NamedPortConfig p;
    const auto eq = spec.find('=');
    p.name = spec.substr(0, eq);
    if (eq != std::string::npos) p.mac = mac_from(spec.substr(eq + 1), "--port " + spec);
    c.ports.push_back(std::move(p));
  }
  for (const auto& spec : o.vhost_user) c.vhost_ports.push_back(vhost_from(spec));
  if (o.mac_table_size) c.engine.table.capacity = *o.mac_table_size;
  if (o.aging_seconds) c.engine.table.aging = std::chrono::seconds(*o.aging_seconds);
  if (o.mtu) c.default_mtu = *o.mtu;
  if (o.ring_slots) c.ring_slots = *o.ring_slots;
  if (o.max_ports) c.engine.max_ports = *o.max_ports;
  if (o.named_only) c.anonymous_ports = false;
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(o.config_path.empty() ? std::string(e.what()) : o.config_path + ": " + e.what());
  }
  return c;
}

namespace {

// SIGINT and SIGTERM arrive as a readable fd, so the switch's epoll sees them.
UniqueFd stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (const int rc = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    throw std::system_error(rc, std::generic_category(), "pthread_sigmask");
  }
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) throw std::system_error(errno, std::generic_category(), "signalfd");
  return fd;
}

}  // namespace

int run_switch(const SwitchOptions& options) {
  auto config = switch_config_from(options);
  const auto signals = stop_signals();
  net::VirtualSwitch sw(std::move(config));
  fmt::print("vdtu switch: listening on {}\n", sw.socket_path());
  (void)std::fflush(stdout);
  sw.run(signals.get());
  fmt::print("{}", sw.report(net::wire::ReportFormat::kText));
  return 0;
}

int run_switch_stat(const SwitchStatOptions& options) {
  fmt::print("{}", net::read_switch_report(options.socket_path, options.json));
  return 0;
}

}  // namespace vdtu::cli
