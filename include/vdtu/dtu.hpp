#pragma once
// A PE's view of its virtual DTU: send, reply, fetch, ack, memory read/write,
// and (for a privileged PE) the control operations. A VPE program creates one
// Dtu from its environment; all methods must be called from one thread.
//
// The PE owns nothing it could abuse: channels, doorbells and memory arrive as
// fds from the node over the control socket, and memory endpoints are served
// by the node, which enforces their bounds and permissions.

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vdtu/dtu_types.hpp"
#include "vdtu/message_header.hpp"
#include "vdtu/status.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu {

// A fetched message. `header` carries the label and the sender that the node
// configured for the channel, never bytes the sender wrote; `payload` points
// into the receive slot until the message is acked or replied to.
struct ReceivedMessage {
  MessageHeader header{};
  std::span<const std::byte> payload;
  EpId ep = 0;
  std::uint32_t channel_id = 0;  // the DTU's handle for the inbound channel
  std::uint32_t sequence = 0;
};

enum class SendMode : std::uint8_t {
  kFail,  // no credits or no room: return kNoCredits / kFull at once
  kWait,  // wait for credits and room (until the timeout)
};

struct PeExit {
  PeId pe = 0;
  int code = 0;  // exit code, or 128 + signal number if it was killed
};

struct DtuStats {
  std::uint64_t forged_replies_dropped = 0;  // replies that matched no request
  std::uint64_t broken_channels = 0;         // inbound channels whose sender broke the protocol
  std::uint64_t late_memory_answers = 0;     // answers to memory requests that had timed out: skipped
  std::uint64_t lost_updates = 0;            // endpoint updates whose fds did not fit (see RLIMIT_NOFILE)
};

class Dtu {
 public:
  // The environment variable that names the control socket's fd.
  static constexpr const char* kControlFdVariable = "VDTU_CONTROL_FD";
  // The node's process id: a PE dies with its node (it has no DTU without it).
  static constexpr const char* kNodePidVariable = "VDTU_NODE_PID";

  // Connects through the fd named in the environment; waits for the node's hello.
  static std::unique_ptr<Dtu> from_environment();
  explicit Dtu(UniqueFd control_socket);
  ~Dtu();
  Dtu(const Dtu&) = delete;
  Dtu& operator=(const Dtu&) = delete;

  [[nodiscard]] PeId pe() const;
  [[nodiscard]] VpeId vpe() const;
  [[nodiscard]] bool privileged() const;
  [[nodiscard]] std::uint32_t endpoint_count() const;
  [[nodiscard]] EndpointKind endpoint_kind(EpId ep);
  // This PE's own memory (what memory endpoints of other PEs target).
  [[nodiscard]] std::span<std::byte> local_memory() const;

  // --- messages -----------------------------------------------------------
  // Sends over send endpoint `ep`. A reply (if the endpoint has a reply
  // endpoint) arrives there with label = `replylabel`.
  Status send(EpId ep, std::span<const std::byte> payload, std::uint64_t replylabel = 0,
              SendMode mode = SendMode::kFail, std::chrono::nanoseconds timeout = std::chrono::seconds(10));
  // Replies to a fetched message (once; also acks it). kReplyFailed if the
  // message is not reply-enabled, was replied to already, or was acked.
  Status reply(const ReceivedMessage& message, std::span<const std::byte> payload);
  // Fetches the next message of receive endpoint `ep` (kEmpty if none).
  Status fetch(EpId ep, ReceivedMessage& out);
  Status ack(const ReceivedMessage& message);
  // Waits for a message on `ep`, then fetches it.
  Status receive(EpId ep, ReceivedMessage& out, std::chrono::nanoseconds timeout = std::chrono::seconds(10));
  // Waits until any endpoint may have something (or an update/wake arrived).
  Status wait(std::chrono::nanoseconds timeout);
  // How long wait() polls before it sleeps: longer than most answers take
  // from a PE on another CPU, shorter than burning a CPU for nothing.
  static constexpr std::chrono::microseconds kDefaultSpin{50};
  // The same, polling for `spin` before sleeping: for a PE that knows an
  // answer is due soon and that the parties producing it have CPUs of their
  // own (polling longer than they need to answer takes a CPU from them).
  Status wait(std::chrono::nanoseconds timeout, std::chrono::nanoseconds spin);
  // Credits left on send endpoint `ep` (kCreditsUnlimited if unlimited).
  [[nodiscard]] std::uint32_t credits(EpId ep);

  // --- memory ---------------------------------------------------------------
  Status read(EpId ep, std::uint64_t offset, std::span<std::byte> into);
  Status write(EpId ep, std::uint64_t offset, std::span<const std::byte> from);

  // --- control plane (privileged PEs only; others get kPermissionDenied) ----
  Status config_send(PeId pe, EpId ep, const SendConfig& config);
  Status config_receive(PeId pe, EpId ep, const ReceiveConfig& config);
  Status config_memory(PeId pe, EpId ep, const MemoryConfig& config);
  Status invalidate(PeId pe, EpId ep);
  Status invalidate_all(PeId pe);
  Status terminate(PeId pe, EpId ep);
  Status wake(PeId pe);
  Status set_vpe(PeId pe, VpeId vpe);
  Status privilege(PeId pe);
  // Starts `command` (program, then arguments) as a new, unprivileged PE.
  Status launch(std::span<const std::string> command, PeId& pe);
  // Zeroes [offset, offset + size) of PE `pe`'s memory, or (kGlobalMemoryPe)
  // the node's global memory; the window is checked like a memory endpoint's.
  Status clear_memory(PeId pe, std::uint64_t offset, std::uint64_t size);

  // Applies pending endpoint updates; waits until `ep` has `kind`.
  Status wait_for_endpoint(EpId ep, EndpointKind kind,
                           std::chrono::nanoseconds timeout = std::chrono::seconds(10));

  // Privileged PEs: the PEs that ended since the last call.
  std::vector<PeExit> take_exits();

  [[nodiscard]] const DtuStats& stats() const;
  // Publishes counts about this PE on its private page, where its node (and
  // so `vdtu stat`) reads them; a few relaxed stores, no system call.
  void publish(const PublishedCounts& counts);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vdtu
