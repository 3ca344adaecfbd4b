#pragma once
// What one node's bridge tells another inside the reliable link's DATA frames
// (docs/PROTOCOL.md). A binding is one remote send endpoint: the sending
// node names it with its own 32-bit id; the receiving node keys it by
// (peer node, id). Packed little-endian structs: both sides validate sizes.

#include <cstdint>

#include "protocol/control_messages.hpp"
#include "vdtu/dtu_types.hpp"
#include "vdtu/status.hpp"

namespace vdtu::dtu {

enum class BridgeOp : std::uint8_t {
  kBind = 1,       // sender node -> receiver node: a send endpoint now targets your PE
  kUnbind,         // sender node: that send endpoint is gone
  kUnbound,        // receiver node: the binding is refused or its receiver is gone
  kMessage,        // sender node: one DTU message (25-byte header, payload)
  kReply,          // receiver node: one reply on the binding
  kCredit,         // receiver node: `count` messages moved into the receiver's channel
  kHeartbeat,      // either: still here
  kMemoryRequest,  // a node whose PE uses a memory endpoint on the receiver's memory (binding: its PE index)
  kMemoryReply,    // the receiver: the outcome (binding: as in the request)
  kBatch,          // either: several of the above in one frame (bridge_batch.hpp; binding: 0)
};

#pragma pack(push, 1)
struct BridgeHeader {
  BridgeOp op{};
  std::uint32_t binding = 0;
};

struct BindBody {
  PeId target_pe = 0;
  EpId target_ep = 0;
  PeId sender_pe = 0;
  EpId sender_ep = 0;
  VpeId sender_vpe = 0;
  std::uint64_t label = 0;
  std::uint32_t credits = 0;
  std::uint32_t max_msg_size = 0;
  EpId sender_reply_ep = kNoReplyEp;  // kNoReplyEp: not reply-enabled
  std::uint32_t reply_slot_size = 0;  // slot size of the sender's reply endpoint
};

struct UnboundBody {
  Status reason = Status::kOk;
};

struct CreditBody {
  std::uint32_t count = 0;
};

// Followed by the bytes to write (writes only).
struct MemoryAccessBody {
  PeId target_pe = 0;  // kGlobalMemoryPe or a PE of the receiving node
  MemoryOp op{};
  std::uint64_t offset = 0;  // in the target's memory
  std::uint32_t length = 0;
};

// Followed by the bytes read (successful reads only).
struct MemoryReplyBody {
  Status status = Status::kOk;
};
#pragma pack(pop)

static_assert(sizeof(BridgeHeader) == 5);
static_assert(sizeof(BindBody) == 29);

}  // namespace vdtu::dtu
