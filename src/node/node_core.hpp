#pragma once
// The node's logic: the PE table, the control plane, the memory service and
// the bridge, on one thread. The event loop (node_loop.hpp) calls it when a
// socket, pidfd or channel has something, and between events while it polls;
// nothing here blocks, and nothing here needs a lock.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "channel_pool.hpp"
#include "channel_tap.hpp"
#include "event_watcher.hpp"
#include "node_config.hpp"
#include "node_snapshot.hpp"
#include "pe_launcher.hpp"
#include "pe_record.hpp"

namespace vdtu::dtu {

class NodeBridge;

// A receive endpoint of this node that takes one side of a binding.
struct LocalReceiver {
  std::uint32_t pe = 0;  // PE index
  EpId ep = 0;
};

// The channels of one binding (a send endpoint and, if it wants replies, the
// way back). Either side may be a local receive endpoint or the bridge.
struct BindingSpec {
  std::optional<LocalReceiver> requests_to;  // empty: the bridge consumes the requests
  bool replies = false;
  std::optional<LocalReceiver> replies_to;  // empty (with replies): the bridge consumes them
  std::uint32_t slots = 0;
  std::uint32_t request_slot_size = 0;
  std::uint32_t reply_slot_size = 0;
};

struct BoundChannels {
  std::shared_ptr<SharedChannel> request;
  std::shared_ptr<SharedChannel> reply;  // only with replies
  std::uint16_t request_index = 0;       // channel index at requests_to
  std::uint16_t reply_index = 0;         // channel index at replies_to
};

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

// Slots of a per-sender channel: enough for every credit, at most the
// receive buffer, a power of two of at least two.
std::uint32_t channel_slots(std::uint32_t credits, std::uint32_t receive_slots);
// A send endpoint's credits are what its receiver holds for it: at most the
// channel's slots. Then every request in flight has a slot, and every reply
// (the reply channel has as many) has room. Unlimited credits stay unlimited
// only without replies.
SendConfig with_credits_for(SendConfig c, std::uint32_t slots);

class NodeCore {
 public:
  using Clock = std::chrono::steady_clock;

  // Throws std::invalid_argument for a configuration it cannot run and
  // std::system_error when the OS refuses (memory, the bridge's socket).
  NodeCore(NodeConfig config, EventWatcher& watcher, PeLauncher& launcher);
  ~NodeCore();
  NodeCore(const NodeCore&) = delete;
  NodeCore& operator=(const NodeCore&) = delete;

  // --- PEs ------------------------------------------------------------------
  // Starts a program on a free PE. Throws std::runtime_error when no PE is
  // free or the program cannot be started.
  PeId launch(const PeProgram& program);
  // A PE without a process (see Node::attach).
  UniqueFd attach(bool privileged, PeId& pe);
  // Kills every PE still running (their exits arrive as usual).
  void kill_all();

  // --- events ----------------------------------------------------------------
  void on_control(std::uint32_t pe);   // its control socket is readable (or closed)
  void on_writable(std::uint32_t pe);  // its control socket has room again
  void on_exit(std::uint32_t pe);      // its pidfd fired

  // --- the loop's rounds ------------------------------------------------------
  // Serves the memory requests waiting now; true if any was.
  bool serve_memory();
  // One round of the bridge (datagrams, bindings, timers); true if it worked.
  bool bridge_step(Clock::time_point now);
  // Sends queued updates that fit now.
  void flush_updates();
  // On an idle round: one channel made ahead of need; true if one was.
  bool make_channel_ahead();
  // Takes the requests privileged PEs posted in their pages; true if any.
  bool serve_mailboxes();
  // Before the loop sleeps: asks every channel it consumes to signal its
  // eventfd. False if something arrived meanwhile (do not sleep then; the
  // arming is undone).
  bool arm_for_sleep();
  void disarm_after_sleep();
  // How long the loop may sleep at most (timers of the bridge, retries).
  [[nodiscard]] std::chrono::milliseconds sleep_limit(Clock::time_point now) const;
  // True when the bridge has nothing unacknowledged (or no peers are left).
  [[nodiscard]] bool bridge_drained() const;

  // --- queries -----------------------------------------------------------------
  [[nodiscard]] NodeStats stats() const;
  // Everything `vdtu stat` shows (node_core_snapshot.cpp).
  [[nodiscard]] NodeSnapshot snapshot() const;
  // Every channel that carries messages now, with who sends and receives on
  // it (for `vdtu trace`; node_core_snapshot.cpp).
  [[nodiscard]] std::vector<TapPoint> tap_points() const;
  [[nodiscard]] bool privileged(PeId pe) const;
  [[nodiscard]] std::optional<int> exit_code(PeId pe) const;
  [[nodiscard]] pid_t pid_of(PeId pe) const;
  [[nodiscard]] bool all_exited() const;
  // How many PEs have ended so far (it moves when one does).
  [[nodiscard]] std::uint64_t retirements() const { return retirements_; }
  [[nodiscard]] std::uint16_t bridge_port() const;
  [[nodiscard]] const NodeConfig& config() const { return config_; }

  // --- for the bridge (node_bridge.cpp) -------------------------------------------
  [[nodiscard]] std::optional<std::uint32_t> index_of(PeId pe) const;  // a live PE
  [[nodiscard]] bool is_local(PeId pe) const {
    return static_cast<std::uint16_t>(pe - config_.first_pe) < config_.pe_count;
  }
  [[nodiscard]] PeId global_id(std::uint32_t index) const {
    return static_cast<PeId>(config_.first_pe + index);
  }
  [[nodiscard]] PeRecord& pe(std::uint32_t index) { return pes_[index]; }
  // The one way channels come to exist: reserves a channel index at every
  // local receiver, creates the channels and enters them there; on any
  // failure nothing is left behind.
  Status bind_channels(const BindingSpec& spec, BoundChannels& out);
  // Ends inbound channel `index` of receive endpoint (pe, ep) and tells the PE.
  void release_inbound(std::uint32_t pe, EpId ep, std::uint16_t index);
  void invalidate(std::uint32_t pe, EpId ep, Status reason);
  // The reply endpoint `c` names (if any) is a live receive endpoint of `pe`.
  [[nodiscard]] bool reply_endpoint_ready(std::uint32_t pe, const SendConfig& c) const;
  // The window of a memory endpoint on this node's memory (empty if invalid).
  [[nodiscard]] std::span<std::byte> memory_window(const MemoryConfig& c);
  // Answers a PE's memory request: the status byte, then what was read.
  void answer_memory(std::uint32_t pe, std::uint64_t replylabel, Status st,
                     std::span<const std::byte> data = {});
  void queue(Update update);
  static Update sender_update(std::uint32_t pe, EpId ep, const NodeEndpoint& e, int target_doorbell_fd,
                              VpeId target_vpe);
  static Update inbound_update(const InboundChannelInfo& info, const std::shared_ptr<SharedChannel>& channel,
                               const std::shared_ptr<SharedChannel>& reply, int reply_doorbell_fd);
  NodeStats& counters() { return stats_; }

 private:
  [[nodiscard]] std::optional<std::uint32_t> free_slot() const;
  std::uint32_t prepare_slot(bool privileged);  // a free slot, reset, with fresh memory and channels
  void open_slot(std::uint32_t index, UniqueFd node_end);
  void retire_pe(std::uint32_t index);
  void kill_pe(std::uint32_t index);
  [[nodiscard]] Update exit_notice(std::uint32_t to, std::uint32_t ended) const;
  bool arm_mailboxes();
  void disarm_mailboxes();
  // Sends what the PE's socket takes; true if the PE sleeps and must be woken.
  bool deliver(std::uint32_t index);
  bool keep_for_later(std::uint32_t index);
  // Control plane (node_control.cpp).
  void serve_control_request(std::uint32_t pe, std::span<const std::byte> bytes);
  void answer_request(std::uint32_t pe, const ControlRequest& request, bool in_page);
  Status handle_request(std::uint32_t requester, const ControlRequest& r, PeId& launched);
  Status launch_command(const ControlRequest& r, PeId& launched);
  Status config_send(std::uint32_t pe, EpId ep, const SendConfig& c);
  Status config_receive(std::uint32_t pe, EpId ep, const ReceiveConfig& c);
  Status config_memory(std::uint32_t pe, EpId ep, const MemoryConfig& c);
  // Zeroes a window of this node's memory, checked as a memory endpoint's (memory_clear.cpp).
  Status clear_memory(const MemoryConfig& c);
  // Why index_of(pe) found nothing: kNotConfigured if the PE is in this
  // node's range but does not run yet (the caller may retry), kPeerGone if
  // it ended, kInvalidArgument if it is not this node's.
  [[nodiscard]] Status absent_pe_status(PeId pe) const;
  void terminate(std::uint32_t pe, EpId ep);
  std::optional<std::uint16_t> reserve_inbound(NodeEndpoint& ep);
  // Memory service (memory_service.cpp).
  bool serve_memory_request(std::uint32_t pe);

  NodeConfig config_;
  EventWatcher& watcher_;
  PeLauncher& launcher_;
  std::vector<PeRecord> pes_;
  UniqueFd global_memory_fd_;
  MappedRegion global_memory_;
  ChannelPool channel_pool_;
  std::unique_ptr<NodeBridge> bridge_;          // with peers only
  std::vector<std::uint32_t> waiting_updates_;  // PEs with a non-empty outbox
  std::uint64_t retirements_ = 0;
  NodeStats stats_;
  Clock::time_point started_ = Clock::now();
};

}  // namespace vdtu::dtu
