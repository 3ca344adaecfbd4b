#pragma once
// vhost-user messages (QEMU's docs/interop/vhost-user.rst): a 12-byte
// header, a payload of at most a few hundred bytes here, and fds alongside.
// The stream socket may deliver a message in pieces; MessageReader gathers
// them without ever blocking and owns each fd the moment it arrives.

#include <array>
#include <cstdint>
#include <vector>

#include "vdtu/unique_fd.hpp"

namespace vdtu::net::vhost {

enum class Request : std::uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kGetConfig = 24,
  kSetConfig = 25,
  kSetStatus = 39,
  kGetStatus = 40,
};

inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kFlagVersionMask = 3;
inline constexpr std::uint32_t kFlagReply = 1U << 2U;
inline constexpr std::uint32_t kFlagNeedReply = 1U << 3U;
inline constexpr std::size_t kHeaderBytes = 12;
inline constexpr std::size_t kMaxPayloadBytes = 512;  // the memory table (8 regions) is 264
inline constexpr std::size_t kMaxFds = 8;

struct Message {
  std::uint32_t request = 0;
  std::uint32_t flags = 0;
  std::uint32_t size = 0;
  std::array<std::byte, kMaxPayloadBytes> payload{};
  std::vector<UniqueFd> fds;
};

class MessageReader {
 public:
  enum class Result { kMessage, kWouldBlock, kClosed, kMalformed };
  // Reads what `socket` has; kMessage when `out` holds a whole message.
  Result read(int socket, Message& out);

 private:
  Result receive(int socket, std::byte* at, std::size_t want);

  std::array<std::byte, kHeaderBytes + kMaxPayloadBytes> buffer_{};
  std::size_t have_ = 0;
  std::vector<UniqueFd> fds_;
};

// Sends a reply (header with the reply flag, then `payload`). Blocking is
// not an issue: replies are small and the frontend waits for them.
bool send_reply(int socket, std::uint32_t request, const void* payload, std::uint32_t size);

}  // namespace vdtu::net::vhost
