#include "switch_report.hpp"

#include <fmt/core.h>

namespace vdtu::net {
namespace {

struct PortLine {
  PortId id;
  std::string name;
  std::string kind;
  std::string peer;
  bool up;
  std::uint32_t mtu;
  PortCounters counters;
};

std::vector<PortLine> port_lines(const ForwardingEngine& engine) {
  std::vector<PortLine> lines;
  for (std::size_t i = 0; i < engine.place_count(); ++i) {
    const auto id = static_cast<PortId>(i);
    if (!engine.reserved(id)) continue;
    const auto& settings = engine.settings(id);
    const auto* port = engine.port(id);
    lines.push_back({id, settings.name.empty() ? fmt::format("port{}", id) : settings.name,
                     port != nullptr ? std::string(to_string(port->kind())) : "-",
                     port != nullptr ? port->peer() : "-", port != nullptr, settings.mtu,
                     port != nullptr ? port->counters() : PortCounters{}});
  }
  return lines;
}

std::string drops_text(const PortCounters& c) {
  std::string text;
  for (std::size_t r = 0; r < kDropReasonCount; ++r) {
    if (c.drops[r] == 0) continue;
    if (!text.empty()) text += ' ';
    text += fmt::format("{}={}", to_string(static_cast<DropReason>(r)), c.drops[r]);
  }
  return text.empty() ? "-" : text;
}

std::string text_report(const ForwardingEngine& engine) {
  const auto& t = engine.table();
  const auto& c = engine.counters();
  std::string out = fmt::format(
      "switch: {} ports up; MAC table {}/{} entries ({} static), learned {}, moved {}, aged {}, evicted {}\n"
      "        floods {} (unknown unicast {}); ports connected {}, closed {}, shut down {}; clients refused "
      "{}\n"
      "        forwarding rounds {} ({} moved frames)\n",
      engine.attached().size(), t.size(), t.capacity(), t.static_entries(), t.counters().learned,
      t.counters().moved, t.counters().aged, t.counters().evicted, c.floods, c.unknown_unicast,
      c.ports_connected, c.ports_closed, c.ports_shut_down, c.clients_refused, c.rounds, c.busy_rounds);
  out += fmt::format("{:>4} {:<12} {:<6} {:<12} {:<5} {:>5} {:>12} {:>14} {:>12} {:>14} {:>10} {:>9}  {}\n",
                     "id", "name", "kind", "peer", "state", "mtu", "rx_frames", "rx_bytes", "tx_frames",
                     "tx_bytes", "flooded", "filtered", "drops");
  for (const auto& p : port_lines(engine)) {
    const auto& k = p.counters;
    out += fmt::format("{:>4} {:<12} {:<6} {:<12} {:<5} {:>5} {:>12} {:>14} {:>12} {:>14} {:>10} {:>9}  {}\n",
                       p.id, p.name, p.kind, p.peer, p.up ? "up" : "down", p.mtu, k.rx_frames, k.rx_bytes,
                       k.tx_frames, k.tx_bytes, k.flooded, k.filtered, drops_text(k));
  }
  return out;
}

// Names are checked port names ([A-Za-z0-9._-]) and peers are our own
// words, so nothing needs escaping.
std::string json_report(const ForwardingEngine& engine) {
  const auto& t = engine.table();
  const auto& c = engine.counters();
  std::string out = fmt::format(
      "{{\"switch\":{{\"ports_up\":{},\"mac_entries\":{},\"mac_capacity\":{},\"mac_static\":{},\"learned\":{}"
      ","
      "\"moved\":{},\"aged\":{},\"evicted\":{},\"floods\":{},\"unknown_unicast\":{},\"ports_connected\":{},"
      "\"ports_closed\":{},\"ports_shut_down\":{},\"clients_refused\":{},\"rounds\":{},\"busy_rounds\":{}}},"
      "\"ports\":[",
      engine.attached().size(), t.size(), t.capacity(), t.static_entries(), t.counters().learned,
      t.counters().moved, t.counters().aged, t.counters().evicted, c.floods, c.unknown_unicast,
      c.ports_connected, c.ports_closed, c.ports_shut_down, c.clients_refused, c.rounds, c.busy_rounds);
  bool first = true;
  for (const auto& p : port_lines(engine)) {
    const auto& k = p.counters;
    out += fmt::format(
        "{}{{\"id\":{},\"name\":\"{}\",\"kind\":\"{}\",\"peer\":\"{}\",\"up\":{},\"mtu\":{},\"rx_frames\":{},"
        "\"rx_bytes\":{},\"tx_frames\":{},\"tx_bytes\":{},\"flooded\":{},\"filtered\":{},\"drops\":{{",
        first ? "" : ",", p.id, p.name, p.kind, p.peer, p.up ? "true" : "false", p.mtu, k.rx_frames,
        k.rx_bytes, k.tx_frames, k.tx_bytes, k.flooded, k.filtered);
    for (std::size_t r = 0; r < kDropReasonCount; ++r) {
      out += fmt::format("{}\"{}\":{}", r == 0 ? "" : ",", to_string(static_cast<DropReason>(r)), k.drops[r]);
    }
    out += "}}";
    first = false;
  }
  out += "]}\n";
  return out;
}

}  // namespace

std::string render_report(const ForwardingEngine& engine, wire::ReportFormat format) {
  return format == wire::ReportFormat::kJson ? json_report(engine) : text_report(engine);
}

}  // namespace vdtu::net
