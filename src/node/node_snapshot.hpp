#pragma once
// What `vdtu stat` shows of a running node: its PEs, endpoints, channels,
// counters and bridge links, copied on the node's thread in one go (so the
// figures of one snapshot belong together) and rendered as text or JSON.
//
// Nothing here names an fd or an address in memory: a snapshot tells what
// exists and how full it is, never how to reach it.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "node_config.hpp"
#include "vdtu/dtu_types.hpp"

namespace vdtu::dtu {

struct ChannelSnapshot {
  std::uint16_t index = 0;  // at the receive endpoint
  bool remote = false;      // the sender is on another node (the bridge produces)
  PeId sender_pe = 0;       // local senders only
  EpId sender_ep = 0;
  std::uint32_t slots = 0;
  std::uint32_t slot_size = 0;
  std::uint32_t queued = 0;  // published and not yet acked, as shared memory says
  std::string state;         // configured, active, terminated
};

struct EndpointSnapshot {
  EpId ep = 0;
  EndpointKind kind = EndpointKind::kInvalid;
  // kSend
  PeId target_pe = 0;
  EpId target_ep = 0;
  std::uint64_t label = 0;
  std::uint32_t credits = 0;    // as configured (the PE library keeps the live count)
  std::uint32_t in_flight = 0;  // requests in its channel not yet acked by the receiver
  std::uint32_t replies_queued = 0;
  std::uint32_t channel_slots = 0;
  bool remote = false;  // the target is on another node
  // kReceive
  std::uint32_t slot_count = 0;
  std::uint32_t slot_size = 0;
  std::vector<ChannelSnapshot> channels;
  // kMemory
  PeId memory_pe = 0;
  std::uint16_t memory_node = 0;
  std::uint64_t memory_offset = 0;
  std::uint64_t memory_size = 0;
  std::uint8_t memory_perms = 0;
};

struct PeSnapshot {
  PeId id = 0;
  pid_t pid = -1;
  bool alive = false;
  bool privileged = false;
  VpeId vpe = 0;
  std::optional<int> exit_code;
  std::vector<EndpointSnapshot> endpoints;   // configured ones only
  std::optional<PublishedCounts> published;  // privileged PEs (kernels): what they claim
};

struct PeerSnapshot {
  std::uint16_t id = 0;
  std::string host;
  std::uint16_t port = 0;
  PeId first_pe = 0;
  std::uint32_t pe_count = 0;
  bool sealed = false;  // datagrams sealed with the cluster key
  bool heard = false;   // something arrived from it
  bool lost = false;
  std::uint64_t rtt_samples = 0;
  std::uint64_t rtt_last_us = 0;
  std::uint64_t rtt_smoothed_us = 0;
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;
  std::uint64_t retransmissions = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t rejected = 0;   // malformed or stale at the link
  std::uint64_t in_flight = 0;  // frames sent, not yet acknowledged
  std::uint64_t backlog = 0;    // messages the link could not take yet
  std::uint64_t backlog_bytes = 0;
  std::uint64_t outbound_bindings = 0;  // our send endpoints bound to its PEs
  std::uint64_t inbound_bindings = 0;   // its send endpoints bound to ours
  std::uint64_t last_heard_ms = 0;      // ago (0 if never)
};

struct NodeSnapshot {
  std::uint16_t node_id = 0;
  PeId first_pe = 0;
  std::uint32_t pe_count = 0;
  std::uint32_t endpoints_per_pe = 0;
  std::uint16_t bridge_port = 0;
  bool sealed = false;
  std::uint64_t uptime_ms = 0;
  NodeStats stats;
  std::vector<PeSnapshot> pes;  // those that run or ran
  std::vector<PeerSnapshot> peers;
};

std::string render_text(const NodeSnapshot& s);
std::string render_json(const NodeSnapshot& s);

}  // namespace vdtu::dtu
