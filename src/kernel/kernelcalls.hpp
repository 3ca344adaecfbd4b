#pragma once
// Kernel-to-kernel messages: DTU messages on each kernel's kernelcall
// endpoint, labelled by the node with the sending kernel's id. One fixed
// layout for every call; `op` selects the handler (a table, like syscalls).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <type_traits>

#include "capability.hpp"
#include "vdtu/kif.hpp"
#include "vdtu/message_header.hpp"

namespace vdtu::kernel {

using KernelId = std::uint16_t;

enum class Kernelcall : std::uint64_t {
  kConnect = 0,       // first message to every peer
  kAnnounceService,   // name, service
  kServiceGone,       // name
  kOpenSession,       // name, args[0] = client's argument, ids[0] = the new session cap
  kOpenSessionReply,  // error, args[0] = ident
  kObtain,            // service; args: -, ident, count, arg; ids: the caps to create
  kObtainReply,       // error, caps: what to create (id, parent, object)
  kDelegate,          // service; args: -, ident, count, arg; caps: the client's caps
  kDelegateReply,     // error, ids: the server's new caps (children of the caps sent)
  kRevoke,            // ids[0]: revoke this capability and its subtree
  kRevokeDone,        // the revocation `call` finished on the sender's side
  kRemoveChild,       // ids[0] lost its child ids[1]
  kCloseSession,      // service, args[1] = ident
  kNoClients,         // the sender's kernel has no clients left
  kFinished,          // the sender has no VPEs and no work left: it ends when everyone has
  kCount,
};

inline constexpr std::size_t kMaxRemoteCaps = 8;  // per cross-kernel OBTAIN or DELEGATE
inline constexpr std::size_t kMaxServiceName = 48;

// A capability as it travels: its id, its parent, and its object.
struct CapDescription {
  CapId id{};
  CapId parent{};
  std::uint64_t words[4] = {};  // the object, by type (see kernel_remote.cpp)
};

struct KernelcallMessage {
  Kernelcall op{};
  std::uint64_t call = 0;  // the requester's operation: replies name it
  kif::Error error = kif::Error::kNone;
  std::uint64_t args[4] = {};
  CapId service{};          // the service capability the call is about
  std::uint32_t count = 0;  // entries of ids or caps
  std::uint32_t name_length = 0;
  char name[kMaxServiceName] = {};
  CapId ids[kMaxRemoteCaps] = {};
  CapDescription caps[kMaxRemoteCaps] = {};
};

// A kernelcall travels without its trailing zero words: most use neither the
// caps nor all ids, so 100 to 250 bytes go instead of 768 (fewer cache lines
// through a channel, more kernelcalls per bridge datagram). The receiver
// fills in the zeros again. The op and call words always go.
inline constexpr std::size_t kMinKernelcallBytes = 16;

inline std::span<const std::byte> wire_bytes(const KernelcallMessage& m) {
  const auto all = std::as_bytes(std::span(&m, 1));
  std::size_t used = all.size();
  for (std::uint64_t word = 0; used > kMinKernelcallBytes; used -= sizeof(word)) {
    std::memcpy(&word, all.data() + used - sizeof(word), sizeof(word));
    if (word != 0) break;
  }
  return all.first(used);
}

inline KernelcallMessage make_kernelcall(Kernelcall op, std::uint64_t call = 0) {
  KernelcallMessage m{};
  m.op = op;
  m.call = call;
  return m;
}

// Service names longer than kMaxServiceName are cut (they are never announced).
inline void set_name(KernelcallMessage& m, std::string_view name) {
  m.name_length = static_cast<std::uint32_t>(std::min(name.size(), kMaxServiceName));
  std::memcpy(m.name, name.data(), m.name_length);
}

// Natural alignment without padding (checked), so fields can be used in place.
static_assert(sizeof(CapDescription) == 64 && std::has_unique_object_representations_v<CapDescription>);
static_assert(sizeof(KernelcallMessage) == 768 && std::has_unique_object_representations_v<KernelcallMessage>,
              "no padding: the layout is the wire format");

// Kernelcall endpoints receive in slots of 2^kKernelcallSlotOrder bytes: a
// kernelcall and its DTU header must fit one.
inline constexpr std::uint8_t kKernelcallSlotOrder = 10;
static_assert(kHeaderSize + sizeof(KernelcallMessage) <= (std::size_t{1} << kKernelcallSlotOrder));

}  // namespace vdtu::kernel
