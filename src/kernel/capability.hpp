#pragma once
// A capability: a typed reference to a kernel object, owned by one VPE at one
// selector. Its global id says who created it and what it is (SemperOS's DDL
// key), and the derivation tree is kept as ids (parent, children), so that a
// tree can later span kernels without pointers between them.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "cap_id.hpp"
#include "vdtu/dtu_types.hpp"
#include "vdtu/kif.hpp"

namespace vdtu::kernel {

struct VpeObject {
  VpeId vpe = 0;
  PeId pe = 0;
};

// A region of the node's global memory or of a PE's local memory.
struct MemoryObject {
  PeId target_pe = kGlobalMemoryPe;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::uint64_t perms = kif::kPermRW;
  bool allocated = false;  // REQMEM's root capability: revoking it frees the region
  std::uint16_t node = 0;  // whose memory: only PEs of that node can reach it
};

// The right to send to a receive endpoint.
struct SendGateObject {
  PeId pe = 0;  // the receiver
  EpId ep = 0;
  std::uint64_t label = 0;
  std::uint32_t credits = 1;
};

struct ServiceObject {
  std::string name;
  VpeId server = 0;
  SendGateObject gate;  // how the kernel reaches the server
  EpId kernel_ep = 0;   // the kernel's send endpoint bound to that gate
  bool alive = true;
  CapId cap{};  // the server's service capability: sessions derive from it
};

inline constexpr std::uint16_t kLocalKernel = 0xffff;

struct SessionObject {
  std::shared_ptr<ServiceObject> service;  // null when the service lives on another kernel ...
  std::uint64_t ident = 0;
  std::uint16_t remote_kernel = kLocalKernel;  // ... namely this one,
  CapId service_cap{};                         // which holds this service capability
};

using CapObject =
    std::variant<VpeObject, MemoryObject, SendGateObject, std::shared_ptr<ServiceObject>, SessionObject>;

struct Capability {
  CapId id{};
  CapId parent{};  // null: a root
  std::vector<CapId> children;
  VpeId owner = 0;
  kif::Selector selector = 0;
  CapObject object;
  std::optional<EpId> activated_on;  // endpoint of the owner this capability configured
  std::uint64_t revoking = 0;        // != 0: the revocation that took it (kept until it completes)

  [[nodiscard]] CapType type() const { return id.type; }
};

}  // namespace vdtu::kernel
