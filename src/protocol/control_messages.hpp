#pragma once
// Messages on a PE's control socket. PE -> node: ControlRequest (only a
// privileged PE's are carried out). Node -> PE: NodeMessage, which is either
// the reply to a request or an endpoint update with its fds attached.
// Both sides are on one host and one ABI, so the structs travel as bytes; the
// node still validates every field of a request, and a PE every update.

#include <cstdint>

#include "vdtu/dtu_types.hpp"
#include "vdtu/status.hpp"

namespace vdtu::dtu {

inline constexpr std::uint32_t kControlMagic = 0x76647475;  // "vdtu"

enum class ControlOp : std::uint8_t {
  kConfigSend = 1,
  kConfigReceive,
  kConfigMemory,
  kInvalidate,
  kInvalidateAll,
  kTerminate,
  kWake,
  kSetVpe,
  kPrivilege,
  kLaunch,       // start a program on a free PE; the reply's `pe` names it
  kClearMemory,  // zero memory.size bytes at memory.offset of memory.target_pe's memory (or global)
  kCount,
};

inline constexpr std::size_t kMaxCommand = 256;
// A datagram of just this word on a control socket: "my mailbox has a
// request" (pe_page.hpp), sent only while the node sleeps. Never answered.
inline constexpr std::uint32_t kMailboxKick = 0x6b63696b;  // "kick"

struct ControlRequest {
  std::uint32_t magic = kControlMagic;
  ControlOp op{};
  EpId ep = 0;
  PeId pe = 0;  // the PE whose endpoint is configured
  std::uint64_t request_id = 0;
  SendConfig send{};
  ReceiveConfig receive{};
  MemoryConfig memory{};
  VpeId vpe = 0;
  // kLaunch: the program and its arguments, each ended by a NUL.
  std::uint16_t command_length = 0;
  char command[kMaxCommand] = {};
};

enum class NodeMessageKind : std::uint8_t {
  kHello = 1,        // fds: own doorbell, local memory, memory request channel (memfd, eventfd),
                     //      memory response channel (memfd, eventfd)
  kReply,            // answer to a ControlRequest
  kSendEndpoint,     // fds: request channel (memfd, eventfd), receiver's doorbell
                     //      [, reply channel (memfd, eventfd) for the endpoint send.reply_ep]
  kReceiveEndpoint,  // no fds: the doorbell is per PE
  kInboundChannel,   // fds: channel (memfd, eventfd) [, reply channel (memfd, eventfd), sender's doorbell]
  kMemoryEndpoint,   // no fds: memory is reached through the node's memory service
  kEndpointGone,     // the endpoint was invalidated; `status` says why
  kChannelGone,      // inbound channel `channel` of endpoint `ep` was removed
  kPeExited,         // to privileged PEs: PE `pe` ended with exit code `label` (128 + signal if killed)
};

struct NodeMessage {
  std::uint32_t magic = kControlMagic;
  NodeMessageKind kind{};
  EpId ep = 0;
  std::uint16_t channel = 0;  // index within the receive endpoint
  Status status = Status::kOk;
  std::uint64_t request_id = 0;

  // kHello
  PeId pe = 0;
  VpeId vpe = 0;
  std::uint16_t node_id = 0;
  std::uint8_t privileged = 0;
  std::uint32_t endpoints = 0;
  std::uint64_t local_memory_bytes = 0;
  std::uint32_t page_epoch = 0;  // the private page's epoch when the hello was sent

  // geometry of the channel(s) carried
  std::uint32_t slot_count = 0;
  std::uint32_t slot_size = 0;
  std::uint32_t reply_slot_count = 0;
  std::uint32_t reply_slot_size = 0;

  // kSendEndpoint
  SendConfig send{};
  // kInboundChannel: what the receiver reports as the sender (trusted)
  PeId sender_pe = 0;
  EpId sender_ep = 0;
  VpeId sender_vpe = 0;
  std::uint64_t label = 0;
  EpId sender_reply_ep = kNoReplyEp;    // replies go there (kNoReplyEp: not reply-enabled)
  std::uint16_t reply_channel = 0;      // index of the reply channel at sender_reply_ep
  EpId reply_for_send_ep = kNoReplyEp;  // set when this inbound channel carries replies
  // kMemoryEndpoint
  MemoryConfig memory{};
};

// Memory service requests, carried over a PE's memory request channel.
enum class MemoryOp : std::uint8_t { kRead = 1, kWrite = 2 };

struct MemoryRequest {
  MemoryOp op{};
  EpId ep = 0;
  std::uint32_t length = 0;
  std::uint64_t offset = 0;
};

}  // namespace vdtu::dtu
