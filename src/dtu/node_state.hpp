#pragma once
// The node's trusted tables: every PE and every endpoint, and the channels the
// node created for them. Guarded by one mutex, shared by the control thread,
// the memory service thread and launch().

#include <sys/types.h>

#include <atomic>
#include <bitset>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "control_messages.hpp"
#include "doorbell.hpp"
#include "node.hpp"
#include "vdtu/channel.hpp"
#include "vdtu/dtu.hpp"
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
  std::vector<std::shared_ptr<SharedChannel>> inbound;  // by channel index
  // kMemory
  MemoryConfig memory{};
};

struct PeRecord {
  bool alive = false;
  bool condemned = false;  // killed for not taking its updates; the pidfd will retire it
  pid_t pid = -1;
  UniqueFd socket;
  UniqueFd pidfd;
  Doorbell doorbell;
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
};

// One update for one PE, with the fds it carries (borrowed from the records).
struct Update {
  std::uint32_t pe_index = 0;
  NodeMessage message;
  std::vector<int> fds;
  // The channels whose fds travel: kept open until the update is delivered,
  // even if their endpoint goes in the meantime (then a kChannelGone follows).
  std::vector<std::shared_ptr<SharedChannel>> channels;
};

class NodeBridge;

// Slots of a per-sender channel: enough for every credit, at most the
// receive buffer, a power of two of at least two.
std::uint32_t channel_slots(std::uint32_t credits, std::uint32_t receive_slots);
std::shared_ptr<SharedChannel> make_channel(std::uint32_t slots, std::uint32_t slot_size);

// What the receiver of a new inbound channel learns about it.
struct InboundChannelInfo {
  std::uint32_t target = 0;  // PE index
  EpId ep = 0;
  std::uint16_t index = 0;
  std::uint32_t slots = 0;
  std::uint32_t slot_size = 0;
  PeId sender_pe = 0;
  EpId sender_ep = 0;
  VpeId sender_vpe = 0;
  std::uint64_t label = 0;
  EpId sender_reply_ep = kNoReplyEp;
  std::uint16_t reply_index = 0;
  std::uint32_t reply_slot_size = 0;
};

class NodeState {
 public:
  explicit NodeState(NodeConfig config);

  NodeConfig config;
  mutable std::mutex mutex;
  std::condition_variable pe_exited;  // notified by the control thread
  std::vector<PeRecord> pes;
  Doorbell service_doorbell;  // PEs ring it after a memory request; bit = PE index
  UniqueFd global_memory_fd;
  MappedRegion global_memory;
  UniqueFd stop_event;
  int control_epoll = -1;  // owned by the control loop
  std::atomic<bool> stopping{false};
  std::thread control_thread;
  std::thread memory_thread;
  NodeStats stats;                     // under mutex
  std::unique_ptr<NodeBridge> bridge;  // with peers only

  [[nodiscard]] std::optional<std::uint32_t> index_of(PeId pe) const;
  // Why index_of(pe) found nothing: kNotConfigured if the PE is in this
  // node's range but does not run yet (the caller may retry), kPeerGone if
  // it ended, kInvalidArgument if it is not this node's.
  [[nodiscard]] Status absent_pe_status(PeId pe) const;
  [[nodiscard]] PeId global_id(std::uint32_t index) const {
    return static_cast<PeId>(config.first_pe + index);
  }

  // Control plane (node_control.cpp). Caller holds the mutex. Appends the
  // updates to send to `updates`.
  Status handle_request(std::uint32_t requester, const ControlRequest& request, std::vector<Update>& updates,
                        PeId& launched);
  // Tears down every endpoint of a PE that exited.
  void retire_pe(std::uint32_t index, std::vector<Update>& updates);
  // Sends updates (non-blocking) and bumps the receivers' epochs. A PE that
  // cannot take its updates is killed: it would otherwise diverge.
  void deliver(std::vector<Update>& updates);

  // Starts a program on the next free PE (caller holds the mutex). Throws
  // std::runtime_error when no PE is free or the program cannot start.
  PeId launch_locked(const PeProgram& program);

  // Memory service (memory_service.cpp): serves requests until stopping.
  void serve_memory();

  // Shared with the bridge (caller holds the mutex).
  void invalidate(std::uint32_t pe, EpId ep, Status reason, std::vector<Update>& updates);
  std::optional<std::uint16_t> allocate_inbound(NodeEndpoint& ep);
  // The update that hands `channel` (and `reply`, if any) to the receiver.
  static Update sender_update(std::uint32_t pe, EpId ep, const NodeEndpoint& e, int target_doorbell_fd,
                              VpeId target_vpe);
  // The reply endpoint `c` names (if any) is a live receive endpoint of `pe`.
  [[nodiscard]] bool reply_endpoint_ready(std::uint32_t pe, const SendConfig& c) const;
  // The window of a memory endpoint on this node's memory (empty if invalid).
  [[nodiscard]] std::span<std::byte> memory_window(const MemoryConfig& c);
  // Answers a PE's memory request: the status byte, then what was read.
  void answer_memory(std::uint32_t pe, std::uint64_t replylabel, Status st,
                     std::span<const std::byte> data = {});
  [[nodiscard]] bool is_local(PeId pe) const {
    return static_cast<std::uint16_t>(pe - config.first_pe) < config.pe_count;
  }
  static Update inbound_update(const InboundChannelInfo& info, const std::shared_ptr<SharedChannel>& channel,
                               const std::shared_ptr<SharedChannel>& reply, int reply_doorbell_fd);

 private:
  Status launch_command(const ControlRequest& r, PeId& launched);
  Status config_send(std::uint32_t pe, EpId ep, const SendConfig& c, std::vector<Update>& updates);
  Status config_receive(std::uint32_t pe, EpId ep, const ReceiveConfig& c, std::vector<Update>& updates);
  Status config_memory(std::uint32_t pe, EpId ep, const MemoryConfig& c, std::vector<Update>& updates);
  // Zeroes a window of this node's memory, checked as a memory endpoint's (memory_clear.cpp).
  Status clear_memory(const MemoryConfig& c);
  void terminate(std::uint32_t pe, EpId ep);
  void release_inbound(std::uint32_t pe, EpId ep, std::uint16_t index, std::vector<Update>& updates);
  // One request from PE `pe`'s memory channel, if there is one and room for
  // its answer; true if one was taken.
  bool serve_memory_request(std::uint32_t pe);
};

}  // namespace vdtu::dtu
