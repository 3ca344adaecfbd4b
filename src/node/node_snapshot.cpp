#include "node_snapshot.hpp"

#include <fmt/core.h>

namespace vdtu::dtu {
namespace {

// Hosts come from checked configuration and states are our own words, but
// escape anyway: the output is for scripts.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u >= 0x7f) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(u));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

const char* json_bool(bool b) { return b ? "true" : "false"; }

std::string credits_text(std::uint32_t credits) {
  return credits == kCreditsUnlimited ? std::string("unlimited") : std::to_string(credits);
}

std::string perms_text(std::uint8_t perms) {
  std::string out;
  out += (perms & kMemRead) != 0 ? 'r' : '-';
  out += (perms & kMemWrite) != 0 ? 'w' : '-';
  return out;
}

std::string pe_state(const PeSnapshot& p) {
  if (p.alive) return "running";
  return p.exit_code ? fmt::format("exited {}", *p.exit_code) : std::string("ended");
}

std::string endpoint_line(const EndpointSnapshot& e) {
  switch (e.kind) {
    case EndpointKind::kSend:
      return fmt::format(
          "    ep {:>3} send    -> PE {} ep {}{} label {:#x} credits {} in flight {}/{} replies {}", e.ep,
          e.target_pe, e.target_ep, e.remote ? " (remote)" : "", e.label, credits_text(e.credits),
          e.in_flight, e.channel_slots, e.replies_queued);
    case EndpointKind::kReceive:
      return fmt::format("    ep {:>3} receive {} slots of {} B, {} channels", e.ep, e.slot_count,
                         e.slot_size, e.channels.size());
    case EndpointKind::kMemory:
      return fmt::format(
          "    ep {:>3} memory  PE {:#x}{} [{:#x}, +{:#x}) {}", e.ep, e.memory_pe,
          e.memory_node == kThisNode ? std::string{} : fmt::format(" on node {}", e.memory_node),
          e.memory_offset, e.memory_size, perms_text(e.memory_perms));
    case EndpointKind::kInvalid: break;
  }
  return {};
}

void text_counters(std::string& out, const NodeSnapshot& s) {
  const auto& c = s.stats;
  out += fmt::format(
      "  control {} requests ({} denied, {} malformed); memory {} requests ({} rejected); channels {} "
      "created, "
      "{} alive; PEs exited {}\n",
      c.control_requests, c.control_denied, c.malformed_requests, c.memory_requests, c.memory_rejected,
      c.channels_created, c.channels_alive, c.pes_exited);
  if (s.peers.empty()) return;
  out += fmt::format(
      "  bridge {} messages forwarded; datagrams {} sent ({} frames batched), {} received, {} rejected ({} "
      "from strangers, {} "
      "forged, {} replayed); {} oversized, {} for unknown bindings, {} bindings refused, {} window "
      "violations; peers lost {}, returned {}\n",
      c.remote_messages, c.datagrams_sent, c.frames_batched, c.datagrams_received, c.datagrams_rejected,
      c.datagrams_from_strangers, c.datagrams_forged, c.datagrams_replayed, c.remote_oversized,
      c.remote_unknown_binding, c.remote_bindings_refused, c.remote_window_violations, c.peers_lost,
      c.peers_returned);
  if (c.faults.dropped + c.faults.duplicated + c.faults.reordered > 0) {
    out += fmt::format("  faults injected: {} dropped, {} duplicated, {} reordered\n", c.faults.dropped,
                       c.faults.duplicated, c.faults.reordered);
  }
}

std::string json_endpoint(const EndpointSnapshot& e) {
  switch (e.kind) {
    case EndpointKind::kSend:
      return fmt::format(
          "{{\"ep\":{},\"kind\":\"send\",\"target_pe\":{},\"target_ep\":{},\"remote\":{},\"label\":{},"
          "\"credits\":{},\"in_flight\":{},\"channel_slots\":{},\"replies_queued\":{}}}",
          e.ep, e.target_pe, e.target_ep, json_bool(e.remote), e.label,
          e.credits == kCreditsUnlimited ? std::string("null") : std::to_string(e.credits), e.in_flight,
          e.channel_slots, e.replies_queued);
    case EndpointKind::kReceive: {
      std::string channels;
      for (const auto& c : e.channels) {
        if (!channels.empty()) channels += ',';
        channels += fmt::format(
            "{{\"index\":{},\"remote\":{},\"sender_pe\":{},\"sender_ep\":{},\"slots\":{},\"slot_size\":{},"
            "\"queued\":{},\"state\":{}}}",
            c.index, json_bool(c.remote), c.remote ? std::string("null") : std::to_string(c.sender_pe),
            c.remote ? std::string("null") : std::to_string(c.sender_ep), c.slots, c.slot_size, c.queued,
            json_string(c.state));
      }
      return fmt::format(R"({{"ep":{},"kind":"receive","slots":{},"slot_size":{},"channels":[{}]}})", e.ep,
                         e.slot_count, e.slot_size, channels);
    }
    case EndpointKind::kMemory:
      return fmt::format(
          R"({{"ep":{},"kind":"memory","pe":{},"node":{},"offset":{},"size":{},"perms":"{}"}})", e.ep,
          e.memory_pe, e.memory_node == kThisNode ? std::string("null") : std::to_string(e.memory_node),
          e.memory_offset, e.memory_size, perms_text(e.memory_perms));
    case EndpointKind::kInvalid: break;
  }
  return "{}";
}

std::string json_counters(const NodeStats& c) {
  return fmt::format(
      "{{\"control_requests\":{},\"control_denied\":{},\"malformed_requests\":{},\"memory_requests\":{},"
      "\"memory_rejected\":{},\"pes_exited\":{},\"channels_created\":{},\"channels_alive\":{},"
      "\"datagrams_sent\":{},\"frames_batched\":{},\"datagrams_received\":{},\"datagrams_rejected\":{},"
      "\"datagrams_from_"
      "strangers\":{},"
      "\"datagrams_forged\":{},\"datagrams_replayed\":{},\"retransmissions\":{},\"duplicates_dropped\":{},"
      "\"remote_messages\":{},\"remote_unknown_binding\":{},\"remote_bindings_refused\":{},"
      "\"remote_window_violations\":{},\"remote_oversized\":{},\"peers_lost\":{},\"peers_returned\":{},"
      "\"faults_dropped\":{},\"faults_duplicated\":{},\"faults_reordered\":{}}}",
      c.control_requests, c.control_denied, c.malformed_requests, c.memory_requests, c.memory_rejected,
      c.pes_exited, c.channels_created, c.channels_alive, c.datagrams_sent, c.frames_batched,
      c.datagrams_received, c.datagrams_rejected, c.datagrams_from_strangers, c.datagrams_forged,
      c.datagrams_replayed, c.retransmissions, c.duplicates_dropped, c.remote_messages,
      c.remote_unknown_binding, c.remote_bindings_refused, c.remote_window_violations, c.remote_oversized,
      c.peers_lost, c.peers_returned, c.faults.dropped, c.faults.duplicated, c.faults.reordered);
}

std::string json_peer(const PeerSnapshot& p) {
  return fmt::format(
      "{{\"id\":{},\"host\":{},\"port\":{},\"first_pe\":{},\"pe_count\":{},\"sealed\":{},\"heard\":{},"
      "\"lost\":{},\"rtt_samples\":{},\"rtt_last_us\":{},\"rtt_smoothed_us\":{},\"sent\":{},\"delivered\":{},"
      "\"retransmissions\":{},\"duplicates\":{},\"out_of_order\":{},\"rejected\":{},\"in_flight\":{},"
      "\"backlog\":{},\"backlog_bytes\":{},\"outbound_bindings\":{},\"inbound_bindings\":{},"
      "\"last_heard_ms\":{}}}",
      p.id, json_string(p.host), p.port, p.first_pe, p.pe_count, json_bool(p.sealed), json_bool(p.heard),
      json_bool(p.lost), p.rtt_samples, p.rtt_last_us, p.rtt_smoothed_us, p.sent, p.delivered,
      p.retransmissions, p.duplicates, p.out_of_order, p.rejected, p.in_flight, p.backlog, p.backlog_bytes,
      p.outbound_bindings, p.inbound_bindings, p.last_heard_ms);
}

}  // namespace

std::string render_text(const NodeSnapshot& s) {
  std::string out =
      fmt::format("node {}: PEs {}..{} ({} endpoints each), up {:.1f} s{}\n", s.node_id, s.first_pe,
                  s.first_pe + s.pe_count - 1, s.endpoints_per_pe, static_cast<double>(s.uptime_ms) / 1000.0,
                  s.peers.empty() ? std::string{}
                                  : fmt::format(", bridge on UDP port {} ({})", s.bridge_port,
                                                s.sealed ? "sealed" : "plain datagrams"));
  text_counters(out, s);
  for (const auto& p : s.pes) {
    out += fmt::format("PE {:>5} {:<10} pid {:>7} vpe {:>5}{}", p.id, pe_state(p), p.pid, p.vpe,
                       p.privileged ? " privileged" : "");
    if (p.published) {
      out += fmt::format("  kernel: {} capabilities, {} VPEs, {} syscalls, {} kernelcalls",
                         p.published->capabilities, p.published->vpes, p.published->syscalls,
                         p.published->kernelcalls);
    }
    out += '\n';
    for (const auto& e : p.endpoints) {
      out += endpoint_line(e) + '\n';
      for (const auto& c : e.channels) {
        out += fmt::format(
            "        channel {:>3} from {} {}/{} queued ({} B slots) {}\n", c.index,
            c.remote ? std::string("the bridge") : fmt::format("PE {} ep {}", c.sender_pe, c.sender_ep),
            c.queued, c.slots, c.slot_size, c.state);
      }
    }
  }
  if (!s.peers.empty()) {
    out += fmt::format("{:>5} {:<21} {:<6} {:<7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}\n", "peer",
                       "address", "link", "state", "rtt_us", "srtt_us", "sent", "retrans", "inflight",
                       "backlog", "bindings");
    for (const auto& p : s.peers) {
      out += fmt::format("{:>5} {:<21} {:<6} {:<7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}\n", p.id,
                         fmt::format("{}:{}", p.host, p.port), p.sealed ? "sealed" : "plain",
                         p.lost ? "lost" : (p.heard ? "up" : "silent"), p.rtt_last_us, p.rtt_smoothed_us,
                         p.sent, p.retransmissions, p.in_flight, p.backlog,
                         fmt::format("{}/{}", p.outbound_bindings, p.inbound_bindings));
    }
  }
  return out;
}

std::string render_json(const NodeSnapshot& s) {
  std::string pes;
  for (const auto& p : s.pes) {
    if (!pes.empty()) pes += ',';
    std::string eps;
    for (const auto& e : p.endpoints) {
      if (!eps.empty()) eps += ',';
      eps += json_endpoint(e);
    }
    const std::string kernel =
        p.published ? fmt::format(R"({{"capabilities":{},"vpes":{},"syscalls":{},"kernelcalls":{}}})",
                                  p.published->capabilities, p.published->vpes, p.published->syscalls,
                                  p.published->kernelcalls)
                    : std::string("null");
    pes += fmt::format(
        "{{\"id\":{},\"pid\":{},\"alive\":{},\"privileged\":{},\"vpe\":{},\"exit_code\":{},\"kernel\":{},"
        "\"endpoints\":[{}]}}",
        p.id, p.pid, json_bool(p.alive), json_bool(p.privileged), p.vpe,
        p.exit_code ? std::to_string(*p.exit_code) : std::string("null"), kernel, eps);
  }
  std::string peers;
  for (const auto& p : s.peers) {
    if (!peers.empty()) peers += ',';
    peers += json_peer(p);
  }
  return fmt::format(
      "{{\"node\":{},\"first_pe\":{},\"pe_count\":{},\"endpoints_per_pe\":{},\"bridge_port\":{},\"sealed\":{}"
      ","
      "\"uptime_ms\":{},\"counters\":{},\"pes\":[{}],\"peers\":[{}]}}\n",
      s.node_id, s.first_pe, s.pe_count, s.endpoints_per_pe, s.bridge_port, json_bool(s.sealed), s.uptime_ms,
      json_counters(s.stats), pes, peers);
}

}  // namespace vdtu::dtu
