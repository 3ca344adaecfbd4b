#include "node_file.hpp"

#include <arpa/inet.h>
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "common/sibling_program.hpp"
#include "config_file.hpp"
#include "program_name.hpp"
#include "protocol/doorbell.hpp"
#include "vdtu/dtu_types.hpp"

namespace vdtu::cli {
namespace {

// What the node supports (src/dtu/node.cpp checks the same).
constexpr std::int64_t kMaxPes =
    dtu::kChannelsPerEndpoint;                          // a receive endpoint has a channel per PE of its node
constexpr std::int64_t kMaxEndpoints = 255;             // endpoint ids are 8 bits, 0xff means none
constexpr std::int64_t kMaxPeId = kGlobalMemoryPe - 1;  // 0xffff names the node's global memory
constexpr std::int64_t kMaxNodeId = 0xffff;
constexpr std::int64_t kMaxPort = 65535;
constexpr std::int64_t kMinMemory = 4096;
constexpr std::int64_t kMaxPeMemory = std::int64_t{1} << 30;
constexpr std::int64_t kMaxGlobalMemory = std::int64_t{64} << 30;
constexpr std::int64_t kMaxFd = 1 << 20;  // the kernel's default ceiling for fd numbers (fs.nr_open)
constexpr std::int64_t kMinPeerTimeoutMs = 100;
constexpr std::int64_t kMaxPeerTimeoutMs = 3'600'000;
constexpr std::int64_t kMaxInt64 = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMinPeUid = 1000;        // below: system accounts
constexpr std::int64_t kMaxPeUid = 0xfffffffe;  // (uid_t)-1 means "no change"

std::string ipv4(ConfigTable& t, std::string_view key, std::string fallback) {
  auto host = t.string(key, fallback);
  in_addr parsed{};
  if (::inet_pton(AF_INET, host.c_str(), &parsed) != 1) {
    t.mistake(key, "expected an IPv4 address such as \"127.0.0.1\" (names are not looked up)");
    return fallback;
  }
  return host;
}

// How PEs are confined (docs/SECURITY.md, docs/CONFIGURATION.md).
void read_sandbox(ConfigTable& t, sandbox::SandboxConfig& s, std::uint32_t pes) {
  if (t.has("sandbox")) {
    const auto text = t.string("sandbox", {});
    if (const auto mode = sandbox::parse_sandbox_mode(text)) {
      s.mode = *mode;
    } else {
      t.mistake("sandbox", fmt::format(R"("{}": expected "uid", "userns" or "none" (insecure))", text));
    }
  }
  if (t.has("pe_uid_base") != t.has("pe_uid_count")) {
    t.mistake(t.has("pe_uid_base") ? "pe_uid_base" : "pe_uid_count",
              "give pe_uid_base and pe_uid_count together");
  } else if (t.has("pe_uid_base")) {
    sandbox::UidRange uids{t.integer<std::uint32_t>("pe_uid_base", kMinPeUid, kMaxPeUid, kMinPeUid),
                           t.integer<std::uint32_t>("pe_uid_count", 1, kMaxPeUid, 1)};
    if (uids.count < pes)
      t.mistake("pe_uid_count", fmt::format("{} is fewer than the node's {} PEs", uids.count, pes));
    s.uids = uids;
  }
  if (t.has("pe_working_directory"))
    s.working_directory = t.string("pe_working_directory", s.working_directory);
  if (t.has("pe_writable_paths")) s.writable_paths = t.strings("pe_writable_paths");
  if (t.has("pe_network")) {
    const auto network = t.string("pe_network", "none");
    if (network != "none" && network != "host") {
      t.mistake("pe_network", fmt::format(R"("{}": expected "none" (own namespace) or "host")", network));
    }
    s.isolate_network = network != "host";
  }
  s.allow_ptrace_within_pe = t.boolean("pe_allow_ptrace", s.allow_ptrace_within_pe);
}

void read_node(ConfigFile& file, const toml::table& table, dtu::NodeConfig& c, bool& insecure_plain) {
  ConfigTable t(file, table, "[node]",
                {"id",
                 "first_pe",
                 "pes",
                 "endpoints_per_pe",
                 "privileged_endpoints",
                 "pe_memory_bytes",
                 "global_memory_bytes",
                 "bridge_host",
                 "bridge_port",
                 "bridge_fd",
                 "peer_timeout_ms",
                 "cluster_key",
                 "insecure_plain",
                 "sandbox",
                 "pe_uid_base",
                 "pe_uid_count",
                 "pe_working_directory",
                 "pe_writable_paths",
                 "pe_network",
                 "pe_allow_ptrace"});
  c.node_id = t.integer("id", 0, kMaxNodeId, c.node_id);
  c.first_pe = t.integer("first_pe", 0, kMaxPeId, c.first_pe);
  c.pe_count = t.integer("pes", 1, kMaxPes, c.pe_count);
  c.endpoints_per_pe = t.integer("endpoints_per_pe", 1, kMaxEndpoints, c.endpoints_per_pe);
  c.privileged_endpoints = t.integer("privileged_endpoints", 1, kMaxEndpoints, c.endpoints_per_pe);
  c.pe_memory_bytes = t.integer("pe_memory_bytes", kMinMemory, kMaxPeMemory, c.pe_memory_bytes);
  c.global_memory_bytes =
      t.integer("global_memory_bytes", kMinMemory, kMaxGlobalMemory, c.global_memory_bytes);
  if (t.has("bridge_host")) c.bridge_host = ipv4(t, "bridge_host", c.bridge_host);
  c.bridge_port = t.integer("bridge_port", 1, kMaxPort, c.bridge_port);
  c.bridge_fd = t.integer("bridge_fd", 0, kMaxFd, c.bridge_fd);
  c.peer_timeout = std::chrono::milliseconds(
      t.integer("peer_timeout_ms", kMinPeerTimeoutMs, kMaxPeerTimeoutMs, c.peer_timeout.count()));
  if (t.has("cluster_key")) {
    const auto key = t.string("cluster_key", {});
    try {
      if (!key.empty()) c.cluster_key = bridge::parse_cluster_key(key);
    } catch (const std::invalid_argument& e) {
      t.mistake("cluster_key", e.what());
    }
  }
  insecure_plain = t.boolean("insecure_plain", false);
  if (insecure_plain && t.has("cluster_key"))
    t.mistake("insecure_plain", "true contradicts the cluster_key given");
  read_sandbox(t, c.sandbox, c.pe_count);
}

void read_faults(ConfigFile& file, const toml::table& table, bridge::FaultRates& f) {
  ConfigTable t(file, table, "[faults]", {"loss", "duplicate", "reorder", "seed"});
  f.loss = t.number("loss", 0, 1, f.loss, "a probability");
  f.duplicate = t.number("duplicate", 0, 1, f.duplicate, "a probability");
  f.reorder = t.number("reorder", 0, 1, f.reorder, "a probability");
  f.seed = t.integer("seed", 0, kMaxInt64, f.seed);
}

struct Range {
  std::int64_t first;
  std::int64_t count;
  [[nodiscard]] bool overlaps(const Range& o) const {
    return first < o.first + o.count && o.first < first + count;
  }
  [[nodiscard]] std::string text() const { return fmt::format("PEs {} to {}", first, first + count - 1); }
};

struct PeerEntry {
  dtu::PeerNode peer;
  toml::source_region where;
  std::string name;
};

// Checks between keys, once each key is fine by itself.
void check_together(ConfigFile& file, const NodeFile& out, const std::vector<PeerEntry>& peers,
                    const toml::source_region& node_table, bool insecure_plain, std::size_t programs) {
  const auto& c = out.config;
  const Range own{c.first_pe, c.pe_count};
  if (own.first + own.count - 1 > kMaxPeId) {
    file.mistake(node_table,
                 fmt::format("[node] first_pe = {}, pes = {}: {} reach {:#x}, which names the global "
                             "memory; PE ids must stay below it",
                             c.first_pe, c.pe_count, own.text(), kGlobalMemoryPe));
  }
  if (programs > c.pe_count) {
    file.mistake(node_table,
                 fmt::format("[node] pes = {}: too few for the {} [[pe]] programs", c.pe_count, programs));
  }
  for (std::size_t i = 0; i < peers.size(); ++i) {
    const auto& p = peers[i];
    const Range range{p.peer.first_pe, p.peer.pe_count};
    if (p.peer.id == c.node_id) {
      file.mistake(p.where, fmt::format("{} id: {} is this node's own id", p.name, p.peer.id));
    }
    if (range.first + range.count - 1 > kMaxPeId) {
      file.mistake(p.where, fmt::format("{}: {} reach {:#x}; PE ids must stay below it", p.name, range.text(),
                                        kGlobalMemoryPe));
    }
    if (range.overlaps(own)) {
      file.mistake(p.where, fmt::format("{}: {} overlap this node's {}", p.name, range.text(), own.text()));
    }
    for (std::size_t j = 0; j < i; ++j) {
      const Range other{peers[j].peer.first_pe, peers[j].peer.pe_count};
      if (peers[j].peer.id == p.peer.id) {
        file.mistake(p.where,
                     fmt::format("{} id: {} is also the id of {}", p.name, p.peer.id, peers[j].name));
      }
      if (range.overlaps(other)) {
        file.mistake(p.where, fmt::format("{}: {} overlap {} of {}", p.name, range.text(), other.text(),
                                          peers[j].name));
      }
    }
  }
  if (!peers.empty() && !c.cluster_key && !insecure_plain) {
    file.mistake(
        node_table,
        "[node]: with peers, datagrams must be sealed: give cluster_key (64 hex digits, the same in every "
        "node file), or insecure_plain = true to accept that any host reaching the bridge can act as a node");
  }
}

}  // namespace

NodeFile parse_node_file(const std::string& path) {
  ConfigFile file(path);
  ConfigTable root(file, file.root(), "", {"node", "faults", "peer", "pe"});
  NodeFile out;
  bool insecure_plain = false;
  const auto* node_table = root.table("node");
  if (node_table != nullptr) read_node(file, *node_table, out.config, insecure_plain);
  if (const auto* faults = root.table("faults")) read_faults(file, *faults, out.config.faults);
  std::vector<PeerEntry> peers;
  each_table(file, root, "peer", [&](const toml::table& table, const std::string& name) {
    ConfigTable t(file, table, name, {"id", "host", "port", "first_pe", "pes"});
    dtu::PeerNode p;
    p.id = t.required_integer<std::uint16_t>("id", 0, kMaxNodeId);
    if (t.has("host")) p.host = ipv4(t, "host", p.host);
    p.port = t.required_integer<std::uint16_t>("port", 1, kMaxPort);
    p.first_pe = t.required_integer<PeId>("first_pe", 0, kMaxPeId);
    p.pe_count = t.required_integer<std::uint32_t>("pes", 1, kMaxPes);
    peers.push_back({p, table.source(), name});
  });
  each_table(file, root, "pe", [&](const toml::table& table, const std::string& name) {
    ConfigTable t(file, table, name, {"program", "args", "privileged"});
    dtu::PeProgram program;
    if (!t.has("program")) t.mistake("program", "missing");
    const auto named = t.string("program", {});
    if (!named.empty()) {
      program.path = resolve_program(named);
      if (auto why = program_mistake(named, program.path)) t.mistake("program", *why);
    }
    program.args = t.strings("args");
    program.privileged = t.boolean("privileged", false);
    out.programs.push_back(std::move(program));
  });
  const auto* pe_key = file.root().get("pe");
  if (out.programs.empty() && (pe_key == nullptr || pe_key->is_array()))
    file.mistake(file.root().source(), "no [[pe]] program to start");
  file.throw_mistakes();
  for (const auto& p : peers) out.config.peers.push_back(p.peer);
  check_together(file, out, peers, node_table != nullptr ? node_table->source() : file.root().source(),
                 insecure_plain, out.programs.size());
  file.throw_mistakes();
  return out;
}

}  // namespace vdtu::cli
