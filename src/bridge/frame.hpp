#pragma once
// The bridge's datagram framing (docs/PROTOCOL.md): a 40-byte header,
// little-endian, then for DATA frames one DTU message (header and payload).

#include <cstddef>
#include <cstdint>

namespace vdtu::bridge {

inline constexpr std::uint32_t kFrameMagic = 0x52424456;  // "VDBR"
inline constexpr std::uint8_t kFrameVersion = 1;

enum class FrameType : std::uint8_t { kData = 1, kAck = 2 };

#pragma pack(push, 1)
struct FrameHeader {
  std::uint32_t magic;
  std::uint8_t version;
  FrameType type;
  std::uint16_t src_node;
  std::uint16_t dst_node;
  std::uint16_t window;   // free receive slots of the sender of this frame
  std::uint32_t length;   // payload bytes after the header
  std::uint64_t session;  // the sender's link incarnation: stale datagrams are told apart
  std::uint64_t seq;      // DATA: this frame's sequence number
  std::uint64_t ack;      // every frame: next sequence number its sender expects
};
#pragma pack(pop)

static_assert(sizeof(FrameHeader) == 40);
static_assert(offsetof(FrameHeader, session) == 16);
static_assert(offsetof(FrameHeader, seq) == 24);
static_assert(offsetof(FrameHeader, ack) == 32);

inline constexpr std::size_t kMaxFramePayload = 65000;  // one DTU message with a 64 KiB slot fits

}  // namespace vdtu::bridge
