#pragma once
// SemperOS kernel semantics for the VPEs of one kernel: capability tables,
// the derivation tree, syscalls, services and sessions, revocation.
// Pure logic: messages in, replies out; endpoints through EndpointControl.
// Calls that need a server are deferred: they leave a ServiceCall in that
// service's queue and finish in service_reply(). The queues are handed to
// the DTU by pump_service_calls(), which never waits for a slow server.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

#include "capability.hpp"
#include "endpoint_control.hpp"
#include "kernelcalls.hpp"
#include "membership.hpp"
#include "memory_allocator.hpp"

namespace vdtu::kernel {

struct KernelConfig {
  PeId kernel_pe = 0;
  std::uint32_t endpoints_per_pe = 16;
  std::uint64_t global_memory_bytes = std::uint64_t{64} << 20;
  std::uint64_t pe_memory_bytes = std::uint64_t{1} << 20;
  // Several kernels: who this one is and who the others are (empty: alone).
  KernelId self = 0;
  std::uint16_t node = 0;
  Membership members;
  std::uint64_t global_memory_offset = 0;  // this kernel's share of the node's global memory
  // Calls waiting to be sent to one service; a syscall beyond that gets
  // kServiceBusy at once. (Each VPE has one syscall in flight, so only many
  // VPEs calling one stalled server reach it.)
  std::size_t max_queued_service_calls = 256;
};

// The kernel's own endpoints.
inline constexpr EpId kKernelSyscallEp = 0;       // receives every VPE's syscalls
inline constexpr EpId kKernelServiceReplyEp = 1;  // receives servers' answers
inline constexpr EpId kKernelFirstServiceEp = 2;  // one send endpoint per service (alone)
inline constexpr EpId kKernelcallEp = 2;          // with peers: receives kernelcalls ...
inline constexpr EpId kKernelFirstPeerEp = 3;     // ... and sends to member i on EP 3 + i
// The first endpoint free for services.
inline EpId first_service_ep(const Membership& members) {
  return members.empty() ? kKernelFirstServiceEp
                         : static_cast<EpId>(kKernelFirstPeerEp + members.members().size());
}

struct ServiceCall {
  std::uint64_t id = 0;
  EpId kernel_ep = 0;
  kif::ServiceRequest request;
  bool awaited = false;  // a call waits for the answer (CLOSE and SHUTDOWN: nobody)
};

struct DeferredReply {
  VpeId caller = 0;
  std::uint64_t call = 0;
  kif::SyscallReply reply;
};

struct OutgoingKernelcall {
  KernelId to = 0;
  KernelcallMessage message;
};

class Kernel {
 public:
  Kernel(const KernelConfig& config, EndpointControl& endpoints);

  // Boot: a VPE running on `pe`, with its VPE cap at selector 0 and its local
  // memory at selector 1, and its syscall endpoints set up (started). On
  // failure the VPE stays known but not started (a PE that ended before the
  // kernel reached it: its exit arrives as usual); calling again retries.
  Status boot_vpe(VpeId vpe, PeId pe);
  // Boot: gives `holder` a capability for VPE `target` at `selector`.
  kif::Error grant_vpe(VpeId holder, VpeId target, kif::Selector selector);

  // One syscall message from `caller`. A reply, or nothing when the call waits
  // for a server (then `deferred` names it and the outbox holds the request).
  std::optional<kif::SyscallReply> syscall(VpeId caller, std::span<const std::byte> message,
                                           std::uint64_t& deferred);
  // Hands the queued service calls to `send`, oldest first per service. A
  // call that `send` cannot take yet (kFull, kNoCredits) stays first in its
  // queue for the next round; one it refuses otherwise fails (kServiceFailed
  // to whoever waits, through take_finished or a kernelcall).
  void pump_service_calls(const std::function<Status(const ServiceCall&)>& send);
  [[nodiscard]] bool has_queued_service_calls() const { return !service_queues_.empty(); }
  // Everything queued, as if every server took it at once (tests).
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

  // --- several kernels (kernel_remote.cpp) ---------------------------------
  // Queues a kConnect to every peer.
  void connect_peers();
  // A kernelcall from kernel `from` (the node's label: trusted).
  void kernelcall(KernelId from, std::span<const std::byte> message);
  std::vector<OutgoingKernelcall> take_kernelcalls();
  // Deferred syscalls that finished (revocations, calls to other kernels).
  std::vector<DeferredReply> take_finished();
  // Kernel `k` is gone: what waited for it fails or ends, and what was
  // derived from its capabilities is revoked.
  void kernel_gone(KernelId k);
  // No VPE left that is a client, and every peer said the same (or is gone).
  [[nodiscard]] bool cluster_has_no_clients() const;
  // Broadcasts kNoClients once, when this kernel has none left.
  void announce_no_clients();
  // No VPEs and no work left here, and every peer said the same (or is
  // gone). Tells the peers once that this kernel is finished.
  bool ready_to_end();
  // Revocations or calls to other kernels still under way.
  [[nodiscard]] bool has_remote_work() const { return !revocations_.empty() || !remote_calls_.empty(); }
  [[nodiscard]] std::uint64_t malformed_kernelcalls() const { return malformed_kernelcalls_; }
  // Capabilities refused because their id was in use already (never overwritten).
  [[nodiscard]] std::uint64_t refused_ids() const { return refused_ids_; }
  // Tests: as if `count` capabilities had been created and revoked meanwhile.
  void skip_object_ids(std::uint64_t count) { ids_.skip(count); }

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
  // A kernel that asked us to run a service call for one of its VPEs.
  struct RemoteRequester {
    KernelId kernel = 0;
    KernelcallMessage request;
  };
  struct PendingCall {
    VpeId caller = 0;
    kif::SyscallRequest request;
    std::shared_ptr<ServiceObject> service;
    CapId service_cap{};
    std::optional<RemoteRequester> remote;  // set: the caller is on that kernel
  };
  // A syscall of ours that waits for another kernel.
  struct RemoteCall {
    VpeId caller = 0;
    kif::SyscallRequest request;
    KernelId kernel = 0;
    std::vector<CapId> ids;  // the capabilities it sent or will create
  };
  // One revocation: its capabilities stay (marked) until every part is done,
  // so a second revocation reaching them joins instead of finishing early.
  struct Revocation {
    std::vector<CapId> caps;
    std::vector<CapId> detach;                    // roots whose remote parent must forget them
    std::vector<std::pair<CapId, CapId>> unlink;  // (local parent, remote child) to drop at the end
    std::multiset<KernelId> waiting_on;           // kRevokeDone still due from these
    std::uint32_t joined = 0;                     // other revocations we wait for
    std::optional<VpeId> syscall_caller;
    std::vector<std::pair<KernelId, std::uint64_t>> remote_waiters;
    std::vector<std::uint64_t> local_waiters;
  };
  using KernelcallHandler = void (Kernel::*)(KernelId, const KernelcallMessage&);
  static const std::array<KernelcallHandler, static_cast<std::size_t>(Kernelcall::kCount)>
      kKernelcallHandlers;
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
  Result obtain_or_delegate_remote(Vpe&, const kif::SyscallRequest&, const SessionObject& session);
  Result create_vpe(Vpe&, const kif::SyscallRequest&);
  Result vpe_ctrl(Vpe&, const kif::SyscallRequest&);

  Vpe& add_vpe(VpeId vpe, PeId pe);
  Status start(Vpe& vpe);

  Capability* lookup(Vpe& vpe, std::uint64_t selector, CapType type, kif::Error& error);
  kif::Error check_free(const Vpe& vpe, std::uint64_t first, std::uint64_t count) const;
  // A capability with a fresh id (ids_ never repeats one: this cannot fail).
  Capability& insert(Vpe& owner, kif::Selector selector, CapType type, CapObject object, CapId parent);
  kif::Error clone_range(Vpe& from, std::uint64_t from_first, Vpe& to, std::uint64_t to_first,
                         std::uint64_t count);
  // A capability whose id was made earlier (sent to another kernel and back):
  // refused (nullptr, counted) if that id is in use.
  Capability* insert_with_id(Vpe& owner, kif::Selector selector, CapObject object, CapId parent, CapId id);
  Capability& place(Vpe& owner, kif::Selector selector, CapObject object, CapId parent, CapId id);
  [[nodiscard]] bool id_in_use(const CapId& id) const { return index_.count(id) != 0; }
  // Fresh ids for an operation that may create up to kMaxRange capabilities.
  [[nodiscard]] bool ids_left() const;
  // Revocation (kernel_remote.cpp): begin, add the roots, then finish_if_done.
  std::uint64_t begin_revocation();
  // `parent`: for a remote root, the local capability it hangs off (or 0).
  void revoke_subtree(std::uint64_t op, CapId root, bool detach_from_parent, CapId parent);
  bool finish_if_done(std::uint64_t op);  // true if it finished
  void erase_cap(CapId id);
  void revoke_now(const std::vector<CapId>& roots);  // nobody waits for the end
  // One revocation per root, and one that waits for all of them (returned).
  // Several roots in one revocation could wait for each other in a circle:
  // a VPE holding both ends of a chain that passes through another kernel,
  // whose own revocation holds the links between.
  std::uint64_t revoke_each(const std::vector<std::pair<CapId, CapId>>& roots_and_parents);
  void tear_down(Capability& cap);
  [[nodiscard]] bool is_local(CapId id) const;
  bool already_child(const Capability& parent, const CapId& child);
  [[nodiscard]] std::optional<KernelId> owner_of(CapId id) const;
  void send_kernelcall(KernelId to, KernelcallMessage m);
  void send_remove_child(CapId parent, CapId child);  // to the parent's kernel
  void send_close_session(KernelId to, CapId service_cap, std::uint64_t ident);
  void send_error(KernelId to, Kernelcall reply_op, std::uint64_t call, kif::Error e);
  void send_revoke(KernelId to, CapId id, std::uint64_t call);
  [[nodiscard]] bool every_peer_in(const std::set<KernelId>& said) const;  // or gone
  // 0 if the service has too many calls queued already (kServiceBusy).
  std::uint64_t queue_service_call(kif::ServiceRequest request, PendingCall pending);
  // CLOSE and SHUTDOWN: nobody waits, never refused.
  void notify_service(EpId kernel_ep, kif::ServiceRequest request);
  // The service is gone: its queued and sent calls fail.
  void fail_calls_to(const ServiceObject& service);
  void fail_service_call(std::uint64_t call);
  void broadcast(const KernelcallMessage& m);
  Result call_remote(Vpe& caller, const kif::SyscallRequest& r, KernelId kernel, KernelcallMessage m,
                     std::vector<CapId> ids);
  void answer_remote(const PendingCall& pc, const kif::ServiceReply& answer);
  std::optional<RemoteCall> take_remote_call(KernelId from, std::uint64_t call);
  void finish(VpeId caller, std::uint64_t call, kif::SyscallReply reply);

  void kc_connect(KernelId, const KernelcallMessage&);
  void kc_announce_service(KernelId, const KernelcallMessage&);
  void kc_service_gone(KernelId, const KernelcallMessage&);
  void kc_open_session(KernelId, const KernelcallMessage&);
  void kc_open_session_reply(KernelId, const KernelcallMessage&);
  void kc_obtain_or_delegate(KernelId, const KernelcallMessage&);
  void kc_obtain_reply(KernelId, const KernelcallMessage&);
  void kc_delegate_reply(KernelId, const KernelcallMessage&);
  void kc_revoke(KernelId, const KernelcallMessage&);
  void kc_revoke_done(KernelId, const KernelcallMessage&);
  void kc_remove_child(KernelId, const KernelcallMessage&);
  void kc_close_session(KernelId, const KernelcallMessage&);
  void kc_no_clients(KernelId, const KernelcallMessage&);
  void kc_finished(KernelId, const KernelcallMessage&);
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
  std::map<std::uint64_t, Wait> waits_;                     // VPECTRL wait calls by id
  std::map<EpId, std::deque<ServiceCall>> service_queues_;  // by the kernel's endpoint to the service
  CapIdAllocator ids_;
  std::uint64_t next_call_ = 1;
  std::uint64_t deferred_call_ = 0;  // set by a handler that defers its syscall
  // several kernels
  struct RemoteService {
    KernelId kernel = 0;
    CapId cap{};
  };
  std::map<std::string, RemoteService, std::less<>> remote_services_;
  std::map<std::uint64_t, RemoteCall> remote_calls_;
  std::map<std::uint64_t, Revocation> revocations_;
  std::vector<OutgoingKernelcall> kernel_outbox_;
  std::vector<DeferredReply> finished_;
  std::set<KernelId> peers_without_clients_;
  std::set<KernelId> gone_;
  bool announced_no_clients_ = false;
  std::set<KernelId> peers_finished_;
  bool announced_finished_ = false;
  std::uint64_t malformed_kernelcalls_ = 0;
  std::uint64_t refused_ids_ = 0;
};

}  // namespace vdtu::kernel
