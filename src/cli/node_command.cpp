#include "node_command.hpp"

#include <fmt/core.h>

#include <toml++/toml.h>
#include <stdexcept>
#include <vector>

#include "node/node.hpp"
#include "toml_file.hpp"

namespace vdtu::cli {
namespace {

struct NodeFile {
  dtu::NodeConfig config;
  std::vector<dtu::PeProgram> programs;
};

NodeFile parse(const std::string& path) {
  const auto root = load_toml(path);
  NodeFile file;
  if (const auto* node = root["node"].as_table()) {
    auto& c = file.config;
    c.node_id = number(*node, "id", c.node_id);
    c.first_pe = number(*node, "first_pe", c.first_pe);
    c.pe_count = number(*node, "pes", c.pe_count);
    c.endpoints_per_pe = number(*node, "endpoints_per_pe", c.endpoints_per_pe);
    c.pe_memory_bytes = number(*node, "pe_memory_bytes", c.pe_memory_bytes);
    c.global_memory_bytes = number(*node, "global_memory_bytes", c.global_memory_bytes);
    c.bridge_host = (*node)["bridge_host"].value_or(c.bridge_host);
    c.bridge_port = number(*node, "bridge_port", c.bridge_port);
    if ((*node).contains("bridge_fd")) c.bridge_fd = static_cast<int>(number(*node, "bridge_fd", 0U));
    c.peer_timeout = std::chrono::milliseconds(number(*node, "peer_timeout_ms", c.peer_timeout.count()));
    if (const auto key = (*node)["cluster_key"].value<std::string>()) {
      try {
        c.cluster_key = bridge::parse_cluster_key(*key);
      } catch (const std::invalid_argument& e) {
        throw std::runtime_error(path + ": cluster_key: " + e.what());
      }
    }
  }
  if (const auto* faults = root["faults"].as_table()) {  // injected on this node's outgoing datagrams
    auto& f = file.config.faults;
    f.loss = probability(*faults, "loss", f.loss);
    f.duplicate = probability(*faults, "duplicate", f.duplicate);
    f.reorder = probability(*faults, "reorder", f.reorder);
    f.seed = number(*faults, "seed", f.seed);
  }
  if (const auto* peers = root["peer"].as_array()) {
    for (const auto& entry : *peers) {
      const auto* peer = entry.as_table();
      if (peer == nullptr) throw std::runtime_error(path + ": every [[peer]] must be a table");
      dtu::PeerNode p;
      p.id = number(*peer, "id", p.id);
      p.host = (*peer)["host"].value_or(p.host);
      p.port = number(*peer, "port", p.port);
      p.first_pe = number(*peer, "first_pe", p.first_pe);
      p.pe_count = number(*peer, "pes", p.pe_count);
      if (p.port == 0 || p.pe_count == 0)
        throw std::runtime_error(path + ": a [[peer]] needs a port and pes");
      file.config.peers.push_back(p);
    }
  }
  const auto* pes = root["pe"].as_array();
  if (pes == nullptr || pes->empty()) throw std::runtime_error(path + ": no [[pe]] to start");
  for (const auto& entry : *pes) {
    const auto* pe = entry.as_table();
    if (pe == nullptr) throw std::runtime_error(path + ": every [[pe]] must be a table");
    dtu::PeProgram program;
    program.path = (*pe)["program"].value_or(std::string{});
    if (program.path.empty()) throw std::runtime_error(path + ": a [[pe]] has no program");
    program.privileged = (*pe)["privileged"].value_or(false);
    if (const auto* args = (*pe)["args"].as_array()) {
      for (const auto& a : *args) {
        const auto s = a.value<std::string>();
        if (!s) throw std::runtime_error(path + ": args must be strings");
        program.args.push_back(*s);
      }
    }
    file.programs.push_back(std::move(program));
  }
  if (file.programs.size() > file.config.pe_count)
    throw std::runtime_error(path + ": more programs than PEs");
  return file;
}

}  // namespace

int run_node(const NodeOptions& options) {
  const auto file = parse(options.config_path);
  dtu::Node node(file.config);
  std::vector<PeId> started;
  for (const auto& program : file.programs) {
    started.push_back(node.launch(program));
    fmt::print("node {}: PE {} runs {}{}\n", file.config.node_id, started.back(), program.path,
               program.privileged ? " (privileged)" : "");
  }
  const auto timeout =
      options.timeout_seconds > 0
          ? std::chrono::milliseconds(static_cast<std::int64_t>(options.timeout_seconds * 1000))
          : std::chrono::milliseconds::max();
  const bool finished = node.wait_all_exited(timeout);
  int failed = 0;
  for (std::size_t i = 0; i < started.size(); ++i) {
    const auto code = node.exit_code(started[i]);
    fmt::print("node {}: PE {} ({}) {}\n", file.config.node_id, started[i], file.programs[i].path,
               code ? fmt::format("exited with {}", *code) : std::string("still running: killed"));
    failed += (!code || *code != 0) ? 1 : 0;
  }
  const auto stats = node.stats();
  fmt::print(
      "node {}: {} control requests ({} denied), {} memory requests ({} rejected), {} channels created\n",
      file.config.node_id, stats.control_requests, stats.control_denied, stats.memory_requests,
      stats.memory_rejected, stats.channels_created);
  if (!file.config.peers.empty()) {
    fmt::print(
        "node {}: bridge: {} messages forwarded, {} datagrams sent, {} received, {} rejected, "
        "{} retransmitted, {} duplicates dropped, {} peers lost\n",
        file.config.node_id, stats.remote_messages, stats.datagrams_sent, stats.datagrams_received,
        stats.datagrams_rejected, stats.retransmissions, stats.duplicates_dropped, stats.peers_lost);
    if (file.config.faults.any()) {
      fmt::print("node {}: bridge: faults injected: {} dropped, {} duplicated, {} reordered\n",
                 file.config.node_id, stats.faults.dropped, stats.faults.duplicated, stats.faults.reordered);
    }
    if (file.config.cluster_key) {
      fmt::print("node {}: bridge: sealed (ChaCha20-Poly1305): {} failed authentication, {} replayed\n",
                 file.config.node_id, stats.datagrams_forged, stats.datagrams_replayed);
    }
  }
  return finished && failed == 0 ? 0 : 1;
}

}  // namespace vdtu::cli
