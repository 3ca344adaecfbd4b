#pragma once
// Identifiers and endpoint configurations of the virtual DTU, shared by the
// node (which enforces them) and the PE library (which requests them).

#include <cstdint>
#include <string_view>

namespace vdtu {

using PeId = std::uint16_t;   // global PE id: the header's sender_core_id
using EpId = std::uint8_t;    // endpoint index within a PE
using VpeId = std::uint16_t;  // VPE running on a PE

inline constexpr std::uint32_t kCreditsUnlimited = 0xffff;
inline constexpr EpId kNoReplyEp = 0xff;

enum class EndpointKind : std::uint8_t { kInvalid, kSend, kReceive, kMemory };
std::string_view to_string(EndpointKind kind);

enum MemoryPerms : std::uint8_t { kMemRead = 1, kMemWrite = 2, kMemReadWrite = 3 };

struct SendConfig {
  PeId target_pe = 0;
  EpId target_ep = 0;
  std::uint64_t label = 0;                    // delivered to the receiver, set only here
  std::uint32_t credits = kCreditsUnlimited;  // messages in flight without a reply
  std::uint32_t max_msg_size = 0;             // payload bytes; <= the receiver's slot payload
  EpId reply_ep = kNoReplyEp;                 // receive endpoint on the sender for replies
};

struct ReceiveConfig {
  std::uint8_t buffer_order = 11;  // receive buffer of 2^buffer_order bytes ...
  std::uint8_t slot_order = 9;     // ... in slots of 2^slot_order bytes (header included)
};

// A memory endpoint's node: the PE's own, or another node of the cluster
// (requests then travel through both nodes' bridges).
inline constexpr std::uint16_t kThisNode = 0xffff;

struct MemoryConfig {
  PeId target_pe = 0;  // whose memory; kGlobalMemoryPe for the node's global memory
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::uint8_t perms = kMemRead;
  std::uint16_t node = kThisNode;  // the node that target_pe (or the global memory) belongs to
};

// What a PE may publish about itself for `vdtu stat` (a kernel: its
// capabilities and VPEs, the calls it served). Shown as the PE's claim.
struct PublishedCounts {
  std::uint64_t capabilities = 0;
  std::uint64_t vpes = 0;
  std::uint64_t syscalls = 0;
  std::uint64_t kernelcalls = 0;
};

// Memory endpoints may target the node's global memory (SemperOS's memory PE).
inline constexpr PeId kGlobalMemoryPe = 0xffff;

}  // namespace vdtu
