#pragma once
// The gem5 DTU message header, bit-exact: 25 bytes, packed, little-endian.

#include <bit>
#include <cstddef>
#include <cstdint>

namespace vdtu {

static_assert(std::endian::native == std::endian::little,
              "the wire format is little-endian and vdtu stores it natively");

enum MessageFlags : std::uint8_t {
  kFlagReply = 1,
  kFlagGrantCredits = 2,
  kFlagReplyEnabled = 4,
  kFlagPagefault = 8,
  kFlagReplyFailed = 16,
};

#pragma pack(push, 1)
struct MessageHeader {
  std::uint8_t flags;
  std::uint16_t sender_core_id;
  std::uint8_t sender_ep_id;
  std::uint8_t reply_ep_id;
  std::uint16_t length;
  std::uint16_t sender_vpe_id;
  std::uint64_t label;
  std::uint64_t replylabel;
};
#pragma pack(pop)

static_assert(sizeof(MessageHeader) == 25);
static_assert(offsetof(MessageHeader, flags) == 0);
static_assert(offsetof(MessageHeader, sender_core_id) == 1);
static_assert(offsetof(MessageHeader, sender_ep_id) == 3);
static_assert(offsetof(MessageHeader, reply_ep_id) == 4);
static_assert(offsetof(MessageHeader, length) == 5);
static_assert(offsetof(MessageHeader, sender_vpe_id) == 7);
static_assert(offsetof(MessageHeader, label) == 9);
static_assert(offsetof(MessageHeader, replylabel) == 17);

inline constexpr std::size_t kHeaderSize = sizeof(MessageHeader);

}  // namespace vdtu
