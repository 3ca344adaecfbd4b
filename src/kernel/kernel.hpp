#pragma once
// SemperOS kernel semantics for the VPEs of one kernel: capability tables,
// the derivation tree, syscalls, services and sessions, revocation.
// Pure logic: messages in, replies out; endpoints through EndpointControl.
// Calls that need a server are deferred: they leave a ServiceCall in the
// outbox and finish in service_reply().

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "capability.hpp"
#include "endpoint_control.hpp"
#include "memory_allocator.hpp"

namespace vdtu::kernel {

struct KernelConfig {
  PeId kernel_pe = 0;
  std::uint32_t endpoints_per_pe = 16;
  std::uint64_t global_memory_bytes = std::uint64_t{64} << 20;
  std::uint64_t pe_memory_bytes = std::uint64_t{1} << 20;
};

// The kernel's own endpoints.
inline constexpr EpId kKernelSyscallEp = 0;       // receives every VPE's syscalls
inline constexpr EpId kKernelServiceReplyEp = 1;  // receives servers' answers
inline constexpr EpId kKernelFirstServiceEp = 2;  // one send endpoint per service

struct ServiceCall {
  std::uint64_t id = 0;
  EpId kernel_ep = 0;
  kif::ServiceRequest request;
};

struct DeferredReply {
  VpeId caller = 0;
  std::uint64_t call = 0;
  kif::SyscallReply reply;
};

class Kernel {
 public:
  Kernel(KernelConfig config, EndpointControl& endpoints);

  // Boot: a VPE running on `pe`, with its VPE cap at selector 0 and its local
  // memory at selector 1, and its syscall endpoints set up (started).
  Status boot_vpe(VpeId vpe, PeId pe);
  // Boot: gives `holder` a capability for VPE `target` at `selector`.
  kif::Error grant_vpe(VpeId holder, VpeId target, kif::Selector selector);

  // One syscall message from `caller`. A reply, or nothing when the call waits
  // for a server (then `deferred` names it and the outbox holds the request).
  std::optional<kif::SyscallReply> syscall(VpeId caller, std::span<const std::byte> message,
                                           std::uint64_t& deferred);
  std::vector<ServiceCall> take_outbox();
  // A server answered call `call`.
  std::optional<DeferredReply> service_reply(std::uint64_t call, const kif::ServiceReply& reply);
  // A VPE exited or died: everything it holds is revoked, its pending calls
  // dropped; calls waiting for services it served fail (returned).
  std::vector<DeferredReply> vpe_exited(VpeId vpe, int code = 0);
  [[nodiscard]] std::size_t alive_vpes() const;
  [[nodiscard]] bool has_pending_calls() const { return !pending_.empty(); }
  // VPEs alive that serve no live service.
  [[nodiscard]] std::size_t alive_clients() const;
  // Puts a SHUTDOWN for every live service into the outbox.
  void shut_down_services();

  [[nodiscard]] std::size_t capability_count() const { return index_.size(); }
  [[nodiscard]] const Capability* find(VpeId vpe, kif::Selector selector) const;
  [[nodiscard]] const Capability* find(CapId id) const;

 private:
  struct Vpe {
    VpeId id = 0;
    PeId pe = 0;
    bool alive = true;
    bool started = false;  // syscall endpoints set up (VPECTRL start)
    int exit_code = 0;
    std::map<kif::Selector, std::unique_ptr<Capability>> caps;
    std::map<EpId, CapId> activations;  // endpoint -> capability that configured it
  };
  struct PendingCall {
    VpeId caller = 0;
    kif::SyscallRequest request;
    std::shared_ptr<ServiceObject> service;
    CapId service_cap = 0;
  };
  using Result = std::optional<kif::SyscallReply>;  // nothing: deferred
  using Handler = Result (Kernel::*)(Vpe&, const kif::SyscallRequest&);

  static const std::array<Handler, static_cast<std::size_t>(kif::Syscall::kCount)> kHandlers;
  static const std::array<std::uint8_t, static_cast<std::size_t>(kif::Syscall::kCount)> kArgCount;

  Result noop(Vpe&, const kif::SyscallRequest&);
  Result not_supported(Vpe&, const kif::SyscallRequest&);
  Result create_gate(Vpe&, const kif::SyscallRequest&);
  Result attach_rb(Vpe&, const kif::SyscallRequest&);
  Result detach_rb(Vpe&, const kif::SyscallRequest&);
  Result activate(Vpe&, const kif::SyscallRequest&);
  Result req_mem(Vpe&, const kif::SyscallRequest&);
  Result derive_mem(Vpe&, const kif::SyscallRequest&);
  Result exchange(Vpe&, const kif::SyscallRequest&);
  Result revoke(Vpe&, const kif::SyscallRequest&);
  Result exit(Vpe&, const kif::SyscallRequest&);
  Result create_srv(Vpe&, const kif::SyscallRequest&);
  Result create_sess(Vpe&, const kif::SyscallRequest&);
  Result create_sess_at(Vpe&, const kif::SyscallRequest&);
  Result obtain_or_delegate(Vpe&, const kif::SyscallRequest&);
  Result create_vpe(Vpe&, const kif::SyscallRequest&);
  Result vpe_ctrl(Vpe&, const kif::SyscallRequest&);

  Vpe& add_vpe(VpeId vpe, PeId pe);
  Status start(Vpe& vpe);

  Capability* lookup(Vpe& vpe, std::uint64_t selector, CapType type, kif::Error& error);
  kif::Error check_free(const Vpe& vpe, std::uint64_t first, std::uint64_t count) const;
  Capability& insert(Vpe& owner, kif::Selector selector, CapType type, CapObject object, CapId parent);
  kif::Error clone_range(Vpe& from, std::uint64_t from_first, Vpe& to, std::uint64_t to_first,
                         std::uint64_t count);
  void revoke_tree(CapId root);
  void tear_down(Capability& cap);
  Result defer(Vpe& caller, const kif::SyscallRequest& r, std::shared_ptr<ServiceObject> service,
               CapId service_cap, kif::ServiceRequest request);

  KernelConfig config_;
  EndpointControl& endpoints_;
  MemoryAllocator global_memory_;
  std::map<VpeId, Vpe> vpes_;
  std::unordered_map<CapId, Capability*> index_;
  std::map<std::string, std::shared_ptr<ServiceObject>, std::less<>> services_;
  std::vector<bool> kernel_eps_used_;
  std::map<std::uint64_t, PendingCall> pending_;
  struct Wait {
    VpeId caller = 0;
    VpeId target = 0;
  };
  std::map<std::uint64_t, Wait> waits_;  // VPECTRL wait calls by id
  std::vector<ServiceCall> outbox_;
  std::uint32_t next_object_ = 1;
  std::uint64_t next_call_ = 1;
};

}  // namespace vdtu::kernel
