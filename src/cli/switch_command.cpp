#include "switch_command.hpp"

#include <fmt/core.h>
#include <sys/signalfd.h>

#include <toml++/toml.h>
#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <system_error>

#include "net/virtual_switch.hpp"
#include "toml_file.hpp"
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

std::vector<net::MacAddress> macs_from(const toml::table& table, std::string_view key,
                                       const std::string& where) {
  std::vector<net::MacAddress> macs;
  const auto* node = table.get(key);
  if (node == nullptr) return macs;
  const auto* list = node->as_array();
  if (list == nullptr)
    throw std::runtime_error(fmt::format("{}: '{}' must be a list of MAC addresses", where, key));
  for (const auto& entry : *list) {
    const auto text = entry.value<std::string>();
    if (!text) throw std::runtime_error(fmt::format("{}: '{}' must be a list of MAC addresses", where, key));
    macs.push_back(mac_from(*text, where));
  }
  return macs;
}

std::string text_of(const toml::table& table, std::string_view key, const std::string& where) {
  const auto* node = table.get(key);
  if (node == nullptr) return {};
  const auto value = node->value<std::string>();
  if (!value) throw std::runtime_error(fmt::format("{}: '{}' must be a string", where, key));
  return *value;
}

template <class Each>
void each_table(const toml::table& root, std::string_view key, const std::string& path, Each each) {
  const auto* node = root.get(key);
  if (node == nullptr) return;
  const auto* list = node->as_array();
  if (list == nullptr)
    throw std::runtime_error(fmt::format("{}: [[{}]] must be an array of tables", path, key));
  for (const auto& entry : *list) {
    const auto* table = entry.as_table();
    if (table == nullptr)
      throw std::runtime_error(fmt::format("{}: every [[{}]] must be a table", path, key));
    each(*table);
  }
}

void read_file(const std::string& path, net::SwitchConfig& c) {
  const auto root = load_toml(path);
  if (const auto* s = root["switch"].as_table()) {
    const auto where = path + ": [switch]";
    if (auto socket = text_of(*s, "socket", where); !socket.empty()) c.socket_path = socket;
    c.engine.table.capacity = number(*s, "mac_table_size", c.engine.table.capacity);
    c.engine.table.aging = std::chrono::seconds(number(*s, "aging_seconds", c.engine.table.aging.count()));
    c.engine.max_ports = number(*s, "max_ports", c.engine.max_ports);
    c.engine.burst = number(*s, "burst", c.engine.burst);
    c.default_mtu = number(*s, "mtu", c.default_mtu);
    c.ring_slots = number(*s, "ring_slots", c.ring_slots);
    c.poll_window = std::chrono::microseconds(number(*s, "poll_window_us", c.poll_window.count()));
    const auto* anonymous = s->get("anonymous_ports");
    if (anonymous != nullptr) {
      if (!anonymous->is_boolean())
        throw std::runtime_error(where + ": 'anonymous_ports' must be true or false");
      c.anonymous_ports = anonymous->as_boolean()->get();
    }
  }
  each_table(root, "port", path, [&](const toml::table& t) {
    net::NamedPortConfig p;
    p.name = text_of(t, "name", path + ": [[port]]");
    const auto where = fmt::format("{}: port '{}'", path, p.name);
    p.mtu = number(t, "mtu", p.mtu);
    if (auto mac = text_of(t, "mac", where); !mac.empty()) p.mac = mac_from(mac, where);
    p.allowed_sources = macs_from(t, "allowed_sources", where);
    c.ports.push_back(std::move(p));
  });
  each_table(root, "uplink", path, [&](const toml::table& t) {
    net::UplinkConfig u;
    u.interface = text_of(t, "interface", path + ": [[uplink]]");
    u.name = text_of(t, "name", path + ": [[uplink]]");
    if (u.name.empty()) u.name = u.interface;
    const auto where = fmt::format("{}: uplink '{}'", path, u.name);
    u.mtu = number(t, "mtu", u.mtu);
    u.ring_frames = number(t, "ring_frames", u.ring_frames);
    u.allowed_sources = macs_from(t, "allowed_sources", where);
    c.uplinks.push_back(std::move(u));
  });
  each_table(root, "static", path, [&](const toml::table& t) {
    const auto where = path + ": [[static]]";
    net::StaticEntryConfig s;
    s.mac = mac_from(text_of(t, "mac", where), where);
    s.vlan = number(t, "vlan", s.vlan);
    s.port = text_of(t, "port", where);
    c.static_entries.push_back(std::move(s));
  });
}

net::SwitchConfig config_from(const SwitchOptions& o) {
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
  auto config = config_from(options);
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
