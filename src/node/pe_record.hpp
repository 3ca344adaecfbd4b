#pragma once
// What the node keeps per PE and per endpoint: the trusted truth that every
// request is checked against. PE programs never see these records; they see
// the updates derived from them.

#include <sys/types.h>

#include <bitset>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "protocol/control_messages.hpp"
#include "protocol/doorbell.hpp"
#include "protocol/pe_page.hpp"
#include "vdtu/channel.hpp"
#include "vdtu/mapped_region.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

struct NodeEndpoint {
  EndpointKind kind = EndpointKind::kInvalid;
  bool terminated = false;
  // kSend
  SendConfig send{};
  std::shared_ptr<SharedChannel> request;
  std::shared_ptr<SharedChannel> reply;
  std::uint16_t index_at_target = 0;
  std::uint16_t reply_index = 0;
  std::uint32_t remote_binding = 0;  // != 0: the target is on another node (node_bridge.hpp)
  // kReceive
  std::uint32_t slot_count = 0;
  std::uint32_t slot_size = 0;
  std::bitset<kChannelsPerEndpoint> used;
  // By channel index, grown as channels are bound (indices are reused lowest
  // first), so an endpoint that two senders use costs two entries, not 1024.
  std::vector<std::shared_ptr<SharedChannel>> inbound;
  // kMemory
  MemoryConfig memory{};

  void set_inbound(std::uint16_t index, std::shared_ptr<SharedChannel> channel) {
    if (index >= inbound.size()) inbound.resize(std::size_t{index} + 1);
    inbound[index] = std::move(channel);
  }
  [[nodiscard]] SharedChannel* inbound_at(std::uint16_t index) const {
    return index < inbound.size() ? inbound[index].get() : nullptr;
  }
};

// One update for one PE, with the fds it carries (borrowed from the records).
struct Update {
  std::uint32_t pe_index = 0;
  NodeMessage message;
  std::vector<int> fds;
  // The channels whose fds travel: kept open until the update is delivered,
  // even if their endpoint goes in the meantime (then a kChannelGone follows).
  std::vector<std::shared_ptr<SharedChannel>> channels;
  bool answer_in_page = false;  // a kReply to a mailbox request: posted in the PE's page as it is queued
};

struct PeRecord {
  bool alive = false;
  bool condemned = false;        // killed for not taking its updates; its exit retires it
  bool in_process = false;       // attached, no process: it ends when its socket closes
  bool used = false;             // has hosted a PE (free slots are reused, never-used ones first)
  std::uint64_t retired_at = 0;  // the node's retirement count when it ended (oldest reused first)
  pid_t pid = -1;
  UniqueFd socket;
  UniqueFd pidfd;
  Doorbell doorbell;               // shared with every sender to this PE: hints only
  PePage page;                     // shared with this PE alone
  std::uint32_t mailbox_seen = 0;  // the id of the last request taken from its mailbox
  UniqueFd memory_fd;
  MappedRegion memory;
  bool privileged = false;
  VpeId vpe = 0;
  std::vector<NodeEndpoint> endpoints;
  std::unique_ptr<SharedChannel> memory_requests;
  std::unique_ptr<SharedChannel> memory_responses;
  std::unique_ptr<Consumer> memory_in;
  std::unique_ptr<Producer> memory_out;
  bool memory_remote_pending = false;  // its request is with another node: take no other meanwhile
  std::optional<int> exit_code;
  std::deque<Update> outbox;  // updates its socket could not take yet, in order

  [[nodiscard]] bool free() const { return !alive && (!used || exit_code.has_value()); }
};

}  // namespace vdtu::dtu
