#pragma once
// The kernel interface: syscall opcodes (SemperOS numbering), the message
// layout of a syscall and its reply, error codes, and the service protocol.
// Shared by the kernel and the VPE library.

#include <cstdint>
#include <string_view>

namespace vdtu::kif {

using Selector = std::uint32_t;

// SemperOS's KIF::Syscall::Operation, same numbers.
enum class Syscall : std::uint64_t {
  kPagefault = 0,  // gem5 only: the DTU reports a page fault. No paging on a host: answered kNotSupported.
  kCreateSrv = 1,
  kCreateSess = 2,
  kCreateSessAt = 3,
  kCreateGate = 4,
  kCreateVpe = 5,
  kCreateMap = 6,
  kAttachRb = 7,
  kDetachRb = 8,
  kExchange = 9,
  kVpeCtrl = 10,
  kDelegate = 11,
  kObtain = 12,
  kActivate = 13,
  kReqMem = 14,
  kDeriveMem = 15,
  kRevoke = 16,
  kExit = 17,
  kNoop = 18,
  kCount = 19,
};

enum class Error : std::uint64_t {
  kNone = 0,
  kInvalidArgs,
  kUnknownOpcode,
  kMalformed,      // message too short for its opcode
  kNoSuchCap,      // selector holds nothing
  kWrongType,      // selector holds a capability of another type
  kSelectorInUse,  // destination selector is occupied
  kNoPerm,         // e.g. deriving more permissions than the parent has
  kNotRevocable,   // selectors 0 and 1
  kOutOfMemory,
  kNoSuchService,
  kServiceFailed,   // the server refused or did not answer
  kEndpointFailed,  // the node refused the endpoint configuration
  kNotSupported,
  kExists,       // a service of that name exists already
  kServiceBusy,  // too many calls wait for that server already: try again later
};

std::string_view to_string(Error e);

// Fixed selectors of every VPE (as in SemperOS): its own VPE cap and its memory.
inline constexpr Selector kSelSelf = 0;
inline constexpr Selector kSelMemory = 1;
inline constexpr Selector kFirstFreeSelector = 2;

// Fixed endpoints of every VPE.
inline constexpr std::uint8_t kSyscallSendEp = 0;
inline constexpr std::uint8_t kSyscallReplyEp = 1;
inline constexpr std::uint8_t kFirstFreeEp = 2;

inline constexpr std::size_t kMaxArgs = 6;
inline constexpr std::size_t kMaxName = 200;  // service names; CREATEVPE: the command line

// A syscall message: opcode, arguments, and for service calls a name.
struct SyscallRequest {
  Syscall opcode{};
  std::uint64_t args[kMaxArgs] = {};
  std::uint64_t name_length = 0;
  char name[kMaxName] = {};
};

struct SyscallReply {
  Error error = Error::kNone;
  std::uint64_t values[3] = {};
};

// Memory capability permissions (as the DTU's memory endpoints).
enum MemPerm : std::uint64_t { kPermR = 1, kPermW = 2, kPermRW = 3 };

// VPECTRL operations.
enum class VpeOp : std::uint64_t { kStart = 0, kWait = 1 };

// EXCHANGE direction.
enum class ExchangeKind : std::uint64_t { kDelegate = 0, kObtain = 1 };

// The service protocol: messages from the kernel to a server's service gate.
enum class ServiceOp : std::uint64_t { kOpen = 0, kObtain = 1, kDelegate = 2, kClose = 3, kShutdown = 4 };

struct ServiceRequest {
  ServiceOp op{};
  std::uint64_t ident = 0;  // the session (from OPEN's answer)
  std::uint64_t count = 0;  // capabilities to obtain or delegate
  std::uint64_t arg = 0;    // free for the client and server to agree on
};

struct ServiceReply {
  Error error = Error::kNone;
  std::uint64_t ident = 0;  // OPEN: the new session's ident
  kif::Selector first = 0;  // OBTAIN: server's selectors to hand out; DELEGATE: where to put them
  std::uint64_t count = 0;
};

}  // namespace vdtu::kif
