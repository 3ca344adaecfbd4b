#pragma once
// What a node is told (NodeConfig, the programs it runs) and what it counts.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bridge/cluster_key.hpp"
#include "bridge/fault_injector.hpp"
#include "sandbox/pe_sandbox.hpp"
#include "vdtu/dtu_types.hpp"

namespace vdtu::dtu {

// Another node of the cluster: where its bridge listens and which PEs it owns.
struct PeerNode {
  std::uint16_t id = 0;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  PeId first_pe = 0;
  std::uint32_t pe_count = 0;
};

struct NodeConfig {
  std::uint16_t node_id = 0;
  PeId first_pe = 0;            // global id of this node's first PE
  std::uint32_t pe_count = 64;  // PEs this node can host
  std::uint32_t endpoints_per_pe = 16;
  // Endpoints of a privileged PE (a kernel: a send endpoint per peer kernel,
  // one per service); 0 means endpoints_per_pe. VPEs keep the smaller count,
  // so a node of many VPEs does not pay for its kernels' endpoints.
  std::uint32_t privileged_endpoints = 0;
  [[nodiscard]] std::uint32_t endpoints_of(bool privileged) const {
    return privileged && privileged_endpoints > endpoints_per_pe ? privileged_endpoints : endpoints_per_pe;
  }
  [[nodiscard]] std::uint32_t max_endpoints() const { return endpoints_of(true); }
  std::size_t pe_memory_bytes = std::size_t{1} << 20;       // each PE's local memory
  std::size_t global_memory_bytes = std::size_t{64} << 20;  // the node's memory PE
  // The bridge (only with peers): DTU messages to their PEs travel over UDP.
  std::string bridge_host = "127.0.0.1";
  std::uint16_t bridge_port = 0;
  int bridge_fd = -1;  // >= 0: an inherited, already bound UDP socket instead (host/port unused)
  std::vector<PeerNode> peers;
  bridge::FaultRates faults;                      // injected on our outgoing datagrams
  std::optional<bridge::ClusterKey> cluster_key;  // every datagram sealed and checked with it
  std::chrono::milliseconds peer_timeout{3000};   // silence after which a peer counts as gone
  // How PE programs are confined (docs/SECURITY.md): by default their own uid
  // per slot when the node is root, a user namespace each otherwise.
  sandbox::SandboxConfig sandbox;
  // Where `vdtu stat` and `vdtu trace` reach the node (stats_server.hpp);
  // empty: nowhere.
  std::string stats_socket;
};

struct PeProgram {
  std::string path;
  std::vector<std::string> args;
  bool privileged = false;
};

struct NodeStats {
  std::uint64_t control_requests = 0;
  std::uint64_t control_denied = 0;
  std::uint64_t malformed_requests = 0;
  std::uint64_t mailbox_requests = 0;  // taken from privileged PEs' pages
  std::uint64_t mailbox_kicks = 0;     // a PE woke the sleeping node for its mailbox
  std::uint64_t memory_requests = 0;
  std::uint64_t memory_rejected = 0;
  std::uint64_t pes_exited = 0;
  std::uint64_t channels_created = 0;
  std::uint64_t channels_alive = 0;
  // bridge
  std::uint64_t datagrams_sent = 0;
  std::uint64_t frames_batched = 0;  // frames that carried several bridge messages
  std::uint64_t datagrams_received = 0;
  std::uint64_t datagrams_rejected = 0;        // malformed, stale, unknown sender (all kinds)
  std::uint64_t datagrams_from_strangers = 0;  // not from any peer's configured address
  std::uint64_t datagrams_forged = 0;          // with a cluster key: failed authentication
  std::uint64_t datagrams_replayed = 0;        // with a cluster key: authentic, but seen before
  std::uint64_t retransmissions = 0;
  std::uint64_t duplicates_dropped = 0;
  std::uint64_t remote_messages = 0;         // DTU messages and replies forwarded to peers
  std::uint64_t remote_unknown_binding = 0;  // arrived for a binding that is gone: dropped
  std::uint64_t remote_bindings_refused = 0;
  std::uint64_t remote_window_violations = 0;  // a peer sent beyond a binding's window or credit
  std::uint64_t remote_oversized = 0;          // messages too large for a frame: dropped
  std::uint64_t peers_lost = 0;
  std::uint64_t peers_returned = 0;  // lost peers that came back as a new incarnation
  bridge::FaultStats faults;
};

}  // namespace vdtu::dtu
