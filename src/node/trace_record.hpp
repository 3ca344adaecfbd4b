#pragma once
// One captured DTU message as `vdtu trace` streams it from a node and as it
// sits in the pcapng file (link type DLT_USER0 = 147): this 24-byte
// pseudo-header, then the message's 25-byte DTU header and the first bytes of
// its payload. Little-endian. tools/wireshark/vdtu.lua dissects it.

#include <cstddef>
#include <cstdint>

namespace vdtu::dtu {

inline constexpr std::uint8_t kTraceVersion = 1;
inline constexpr std::uint32_t kTraceLinkType = 147;  // LINKTYPE_USER0
inline constexpr std::uint16_t kTraceUnknownPe = 0xffff;

enum class TraceDirection : std::uint8_t {
  kLocal = 0,     // between two PEs of this node
  kToPeer = 1,    // from a PE of this node to one on another node (the bridge takes it)
  kFromPeer = 2,  // from a PE on another node (the bridge put it into the channel)
};

enum TraceFlags : std::uint8_t {
  kTraceReply = 1,               // on a reply channel
  kTraceUnverified = 2,          // the receiver had acked it before the copy ended: may be overwritten
  kTraceSenderPrivileged = 4,    // the sending PE is a kernel (local senders only)
  kTraceReceiverPrivileged = 8,  // the receiving PE is a kernel (local receivers only)
};

#pragma pack(push, 1)
struct TraceRecordHeader {
  std::uint8_t version = kTraceVersion;
  TraceDirection direction = TraceDirection::kLocal;
  std::uint8_t flags = 0;
  std::uint8_t reserved = 0;
  std::uint16_t node = 0;
  std::uint16_t sender_pe = kTraceUnknownPe;
  std::uint16_t receiver_pe = kTraceUnknownPe;
  std::uint8_t sender_ep = 0;
  std::uint8_t receiver_ep = 0;
  std::uint16_t captured = 0;  // bytes that follow (DTU header and payload prefix)
  std::uint16_t length = 0;    // the whole message (DTU header and payload)
  std::uint32_t index = 0;     // the message's index in its channel
  std::uint32_t missed = 0;    // messages of this channel the tap missed just before this one
};

// How a record travels over the stats socket: its size (this prefix
// excluded), the capture time (CLOCK_REALTIME, ns), then the record.
struct TraceStreamPrefix {
  std::uint32_t size = 0;
  std::uint64_t time_ns = 0;
};
#pragma pack(pop)

static_assert(sizeof(TraceRecordHeader) == 24);
static_assert(sizeof(TraceStreamPrefix) == 12);

inline constexpr std::size_t kTraceMaxSnap = 1024;  // payload bytes kept at most (the DTU header always)

}  // namespace vdtu::dtu
