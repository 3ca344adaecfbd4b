#include "kernel.hpp"

#include "syscall_reply.hpp"
#include "vdtu/message_header.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace vdtu::kernel {

using kif::Error;
using kif::Selector;
using kif::Syscall;
using kif::SyscallReply;
using kif::SyscallRequest;

namespace {

Error from_status(Status st) { return st == Status::kOk ? Error::kNone : Error::kEndpointFailed; }

constexpr std::uint64_t kMaxRange = 4096;  // selectors per EXCHANGE/REVOKE/OBTAIN

template <class T>
T* as(Capability& c) {
  return std::get_if<T>(&c.object);
}

}  // namespace

// Every slot is filled: an opcode without a handler answers kNotSupported
// (SemperOS's tables leave holes that would call a null pointer).
const std::array<Kernel::Handler, static_cast<std::size_t>(Syscall::kCount)> Kernel::kHandlers = {
    &Kernel::not_supported,       // PAGEFAULT: gem5 only
    &Kernel::create_srv,          // CREATESRV
    &Kernel::create_sess,         // CREATESESS
    &Kernel::create_sess_at,      // CREATESESSAT
    &Kernel::create_gate,         // CREATEGATE
    &Kernel::create_vpe,          // CREATEVPE
    &Kernel::not_supported,       // CREATEMAP (not yet)
    &Kernel::attach_rb,           // ATTACHRB
    &Kernel::detach_rb,           // DETACHRB
    &Kernel::exchange,            // EXCHANGE
    &Kernel::vpe_ctrl,            // VPECTRL
    &Kernel::obtain_or_delegate,  // DELEGATE
    &Kernel::obtain_or_delegate,  // OBTAIN
    &Kernel::activate,            // ACTIVATE
    &Kernel::req_mem,             // REQMEM
    &Kernel::derive_mem,          // DERIVEMEM
    &Kernel::revoke,              // REVOKE
    &Kernel::exit,                // EXIT
    &Kernel::noop,                // NOOP
};

// Arguments each syscall needs; a shorter message is malformed.
const std::array<std::uint8_t, static_cast<std::size_t>(Syscall::kCount)> Kernel::kArgCount = {
    0, 2, 2, 3, 5, 1, 0, 3, 1, 5, 2, 4, 4, 4, 3, 5, 3, 1, 0,
};

Kernel::Kernel(const KernelConfig& config, EndpointControl& endpoints)
    : config_(config),
      endpoints_(endpoints),
      global_memory_(config.global_memory_bytes, config.global_memory_offset),
      kernel_eps_used_(config.endpoints_per_pe, false) {
  for (EpId ep = 0; ep < first_service_ep(config_.members) && ep < kernel_eps_used_.size(); ++ep)
    kernel_eps_used_[ep] = true;
}

Kernel::Vpe& Kernel::add_vpe(VpeId vpe, PeId pe) {
  auto& v = vpes_[vpe];
  v.id = vpe;
  v.pe = pe;
  insert(v, kif::kSelSelf, CapType::kVpe, VpeObject{vpe, pe}, kNoCap);
  insert(v, kif::kSelMemory, CapType::kMemory,
         MemoryObject{pe, 0, config_.pe_memory_bytes, kif::kPermRW, false, config_.node}, kNoCap);
  return v;
}

// The VPE's syscall path: a send endpoint to the kernel labelled with its id
// (the kernel trusts that label, never the message) and a reply endpoint.
Status Kernel::start(Vpe& v) {
  constexpr ReceiveConfig kReplyBuffer{10, 9};
  constexpr std::uint32_t kSyscallPayload = 512 - kHeaderSize;
  const SendConfig gate{config_.kernel_pe, kKernelSyscallEp, v.id, 1, kSyscallPayload, kif::kSyscallReplyEp};
  if (auto st = endpoints_.config_receive(v.pe, kif::kSyscallReplyEp, kReplyBuffer); st != Status::kOk)
    return st;
  if (auto st = endpoints_.config_send(v.pe, kif::kSyscallSendEp, gate); st != Status::kOk) return st;
  v.started = true;
  return Status::kOk;
}

Status Kernel::boot_vpe(VpeId vpe, PeId pe) {
  auto known = vpes_.find(vpe);
  Vpe& v = known != vpes_.end() ? known->second : add_vpe(vpe, pe);
  return v.started ? Status::kOk : start(v);
}

std::size_t Kernel::alive_vpes() const {
  return static_cast<std::size_t>(
      std::count_if(vpes_.begin(), vpes_.end(), [](const auto& v) { return v.second.alive; }));
}

Error Kernel::grant_vpe(VpeId holder, VpeId target, Selector selector) {
  auto h = vpes_.find(holder);
  auto t = vpes_.find(target);
  if (h == vpes_.end() || t == vpes_.end()) return Error::kInvalidArgs;
  if (auto e = check_free(h->second, selector, 1); e != Error::kNone) return e;
  insert(h->second, selector, CapType::kVpe, VpeObject{target, t->second.pe}, kNoCap);
  return Error::kNone;
}

const Capability* Kernel::find(VpeId vpe, Selector selector) const {
  auto v = vpes_.find(vpe);
  if (v == vpes_.end()) return nullptr;
  auto c = v->second.caps.find(selector);
  return c == v->second.caps.end() ? nullptr : c->second.get();
}

const Capability* Kernel::find(CapId id) const {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : it->second;
}

std::optional<SyscallReply> Kernel::syscall(VpeId caller, std::span<const std::byte> message,
                                            std::uint64_t& deferred) {
  deferred = 0;
  deferred_call_ = 0;
  auto v = vpes_.find(caller);
  if (v == vpes_.end() || !v->second.alive) return reply(Error::kInvalidArgs);
  if (!ids_left()) return reply(Error::kOutOfMemory);
  SyscallRequest r{};
  if (message.size() < sizeof(r.opcode)) return reply(Error::kMalformed);
  std::memcpy(&r, message.data(), std::min(message.size(), sizeof(r)));
  const auto op = static_cast<std::uint64_t>(r.opcode);
  if (op >= kHandlers.size()) return reply(Error::kUnknownOpcode);
  if (message.size() < sizeof(r.opcode) + kArgCount[op] * sizeof(std::uint64_t))
    return reply(Error::kMalformed);
  if (r.name_length > kif::kMaxName) return reply(Error::kInvalidArgs);
  auto result = (this->*kHandlers[op])(v->second, r);
  if (!result) deferred = deferred_call_;
  return result;
}

// ---- capability plumbing -------------------------------------------------------

Capability* Kernel::lookup(Vpe& vpe, std::uint64_t selector, CapType type, Error& error) {
  auto it = vpe.caps.find(static_cast<Selector>(selector));
  if (selector > UINT32_MAX || it == vpe.caps.end()) {
    error = Error::kNoSuchCap;
    return nullptr;
  }
  if (it->second->type() != type) {
    error = Error::kWrongType;
    return nullptr;
  }
  return it->second.get();
}

Error Kernel::check_free(const Vpe& vpe, std::uint64_t first, std::uint64_t count) const {
  if (count == 0 || count > kMaxRange || first > UINT32_MAX - count) return Error::kInvalidArgs;
  auto it = vpe.caps.lower_bound(static_cast<Selector>(first));
  if (it != vpe.caps.end() && it->first < first + count) return Error::kSelectorInUse;
  return Error::kNone;
}

bool Kernel::ids_left() const { return ids_.has_room_for(kMaxRange + kMaxRemoteCaps); }

// Puts the capability at `selector` of `owner`; the caller checked that the
// selector is free, the id is not in use and a local parent exists.
Capability& Kernel::place(Vpe& owner, Selector selector, CapObject object, CapId parent, CapId id) {
  auto cap = std::make_unique<Capability>();
  cap->id = id;
  cap->parent = parent;
  cap->owner = owner.id;
  cap->selector = selector;
  cap->object = std::move(object);
  // A parent on another kernel learnt of its new child there (or is told).
  if (!parent.is_null() && is_local(parent)) index_.at(parent)->children.push_back(id);
  auto& ref = *cap;
  index_[id] = &ref;
  owner.caps[selector] = std::move(cap);
  return ref;
}

Capability& Kernel::insert(Vpe& owner, Selector selector, CapType type, CapObject object, CapId parent) {
  return place(owner, selector, std::move(object), parent, ids_.next(owner.pe, owner.id, type));
}

Capability* Kernel::insert_with_id(Vpe& owner, Selector selector, CapObject object, CapId parent, CapId id) {
  if (id.is_null() || id_in_use(id)) {
    ++refused_ids_;
    return nullptr;
  }
  if (!parent.is_null() && is_local(parent) && !id_in_use(parent)) return nullptr;  // the parent went
  return &place(owner, selector, std::move(object), parent, id);
}

Error Kernel::clone_range(Vpe& from, std::uint64_t from_first, Vpe& to, std::uint64_t to_first,
                          std::uint64_t count) {
  if (count == 0 || count > kMaxRange || from_first > UINT32_MAX - count) return Error::kInvalidArgs;
  for (std::uint64_t i = 0; i < count; ++i) {
    auto it = from.caps.find(static_cast<Selector>(from_first + i));
    if (it == from.caps.end()) return Error::kNoSuchCap;
    if (it->second->type() == CapType::kService) return Error::kNoPerm;  // services are not cloneable
  }
  // For a self-exchange the ranges may overlap; the destination must be free.
  if (auto e = check_free(to, to_first, count); e != Error::kNone) return e;
  for (std::uint64_t i = 0; i < count; ++i) {
    const auto& src = *from.caps.at(static_cast<Selector>(from_first + i));
    auto object = src.object;
    if (auto* mem = std::get_if<MemoryObject>(&object)) mem->allocated = false;  // the root frees it
    insert(to, static_cast<Selector>(to_first + i), src.type(), std::move(object), src.id);
  }
  return Error::kNone;
}

void Kernel::tear_down(Capability& cap) {
  auto& owner = vpes_.at(cap.owner);
  if (cap.activated_on) {
    auto a = owner.activations.find(*cap.activated_on);
    if (a != owner.activations.end() && a->second == cap.id) {
      if (owner.alive) endpoints_.invalidate(owner.pe, *cap.activated_on);
      owner.activations.erase(a);
    }
  }
  if (auto* srv = as<std::shared_ptr<ServiceObject>>(cap)) {
    auto& s = **srv;
    s.alive = false;
    services_.erase(s.name);
    fail_calls_to(s);
    endpoints_.invalidate(config_.kernel_pe, s.kernel_ep);
    kernel_eps_used_[s.kernel_ep] = false;
    auto gone = make_kernelcall(Kernelcall::kServiceGone);
    set_name(gone, s.name);
    broadcast(gone);
  }
  // A client's session ends: the server hears CLOSE (nobody waits for the answer).
  if (auto* sess = as<SessionObject>(cap);
      sess != nullptr && sess->service && sess->service->alive && cap.owner != sess->service->server) {
    notify_service(sess->service->kernel_ep, {kif::ServiceOp::kClose, sess->ident, 0, 0});
  }
  if (auto* sess = as<SessionObject>(cap); sess != nullptr && sess->remote_kernel != kLocalKernel) {
    send_close_session(sess->remote_kernel, sess->service_cap, sess->ident);
  }
}

std::size_t Kernel::alive_clients() const {
  std::size_t clients = 0;
  for (const auto& entry : vpes_) {
    const auto& v = entry.second;
    if (!v.alive) continue;
    const bool serves = std::any_of(services_.begin(), services_.end(), [&](const auto& s) {
      return s.second->alive && s.second->server == v.id;
    });
    clients += serves ? 0 : 1;
  }
  return clients;
}

void Kernel::shut_down_services() {
  for (const auto& [name, service] : services_) {
    if (service->alive) notify_service(service->kernel_ep, {kif::ServiceOp::kShutdown, 0, 0, 0});
  }
}

// ---- syscalls ------------------------------------------------------------------

Kernel::Result Kernel::noop(Vpe&, const SyscallRequest&) { return reply(Error::kNone); }

Kernel::Result Kernel::not_supported(Vpe&, const SyscallRequest&) { return reply(Error::kNotSupported); }

// args: vpe_sel (owner of the receive endpoint), dst_sel, ep, label, credits
Kernel::Result Kernel::create_gate(Vpe& v, const SyscallRequest& r) {
  Error e = Error::kNone;
  auto* target = lookup(v, r.args[0], CapType::kVpe, e);
  if (target == nullptr) return reply(e);
  if (e = check_free(v, r.args[1], 1); e != Error::kNone) return reply(e);
  const auto ep = r.args[2];
  const auto credits = r.args[4];
  if (ep < kif::kFirstFreeEp || ep >= config_.endpoints_per_pe || credits == 0 ||
      (credits > 4096 && credits != kCreditsUnlimited)) {
    return reply(Error::kInvalidArgs);
  }
  const auto& t = std::get<VpeObject>(target->object);
  insert(v, static_cast<Selector>(r.args[1]), CapType::kSendGate,
         SendGateObject{t.pe, static_cast<EpId>(ep), r.args[3], static_cast<std::uint32_t>(credits)},
         target->id);
  return reply(Error::kNone);
}

// args: ep, buffer_order, slot_order
Kernel::Result Kernel::attach_rb(Vpe& v, const SyscallRequest& r) {
  if (r.args[0] < kif::kFirstFreeEp || r.args[0] >= config_.endpoints_per_pe || r.args[1] > 30 ||
      r.args[2] > 30) {
    return reply(Error::kInvalidArgs);
  }
  const ReceiveConfig rc{static_cast<std::uint8_t>(r.args[1]), static_cast<std::uint8_t>(r.args[2])};
  return reply(from_status(endpoints_.config_receive(v.pe, static_cast<EpId>(r.args[0]), rc)));
}

// args: ep
Kernel::Result Kernel::detach_rb(Vpe& v, const SyscallRequest& r) {
  if (r.args[0] < kif::kFirstFreeEp || r.args[0] >= config_.endpoints_per_pe)
    return reply(Error::kInvalidArgs);
  return reply(from_status(endpoints_.invalidate(v.pe, static_cast<EpId>(r.args[0]))));
}

// args: selector, ep, reply_ep (send gates; 255: none), max message size (send gates)
Kernel::Result Kernel::activate(Vpe& v, const SyscallRequest& r) {
  const auto ep = r.args[1];
  if (ep < kif::kFirstFreeEp || ep >= config_.endpoints_per_pe) return reply(Error::kInvalidArgs);
  auto it = v.caps.find(static_cast<Selector>(r.args[0]));
  if (r.args[0] > UINT32_MAX || it == v.caps.end()) return reply(Error::kNoSuchCap);
  Capability& cap = *it->second;
  Status st = Status::kInvalidArgument;
  if (const auto* gate = as<SendGateObject>(cap)) {
    const auto reply_ep = r.args[2] >= config_.endpoints_per_pe ? kNoReplyEp : static_cast<EpId>(r.args[2]);
    if (r.args[3] == 0 || r.args[3] > 65536) return reply(Error::kInvalidArgs);
    st = endpoints_.config_send(
        v.pe, static_cast<EpId>(ep),
        {gate->pe, gate->ep, gate->label, gate->credits, static_cast<std::uint32_t>(r.args[3]), reply_ep});
  } else if (const auto* mem = as<MemoryObject>(cap)) {
    // Memory of another node: the node carries the accesses over the bridge.
    st = endpoints_.config_memory(
        v.pe, static_cast<EpId>(ep),
        {mem->target_pe, mem->offset, mem->size, static_cast<std::uint8_t>(mem->perms), mem->node});
  } else {
    return reply(Error::kWrongType);
  }
  if (st != Status::kOk) return reply(Error::kEndpointFailed);
  if (auto old = v.activations.find(static_cast<EpId>(ep)); old != v.activations.end()) {
    if (auto o = index_.find(old->second); o != index_.end()) o->second->activated_on.reset();
  }
  v.activations[static_cast<EpId>(ep)] = cap.id;
  cap.activated_on = static_cast<EpId>(ep);
  return reply(Error::kNone);
}

// args: dst_sel, size, perms
Kernel::Result Kernel::req_mem(Vpe& v, const SyscallRequest& r) {
  if (auto e = check_free(v, r.args[0], 1); e != Error::kNone) return reply(e);
  if (r.args[2] == 0 || (r.args[2] & ~std::uint64_t{kif::kPermRW}) != 0) return reply(Error::kInvalidArgs);
  const auto offset = global_memory_.allocate(r.args[1]);
  if (!offset) return reply(Error::kOutOfMemory);
  // Zeroed when handed out rather than when freed: whatever happened to the
  // region before (a VPE wrote it, a remote holder wrote it late), the new
  // owner sees zeros, and if the node cannot clear it nobody gets it.
  // Revocations stay free of node requests.
  if (endpoints_.clear_memory(kGlobalMemoryPe, *offset, r.args[1]) != Status::kOk) {
    global_memory_.release(*offset, r.args[1]);
    return reply(Error::kEndpointFailed);
  }
  insert(v, static_cast<Selector>(r.args[0]), CapType::kMemory,
         MemoryObject{kGlobalMemoryPe, *offset, r.args[1], r.args[2], true, config_.node}, kNoCap);
  return reply(Error::kNone, *offset);
}

// args: src_sel, dst_sel, offset, size, perms
Kernel::Result Kernel::derive_mem(Vpe& v, const SyscallRequest& r) {
  Error e = Error::kNone;
  auto* src = lookup(v, r.args[0], CapType::kMemory, e);
  if (src == nullptr) return reply(e);
  if (e = check_free(v, r.args[1], 1); e != Error::kNone) return reply(e);
  const auto& m = std::get<MemoryObject>(src->object);
  if (r.args[3] == 0 || r.args[2] > m.size || r.args[3] > m.size - r.args[2])
    return reply(Error::kInvalidArgs);
  if (r.args[4] == 0 || (r.args[4] & ~m.perms) != 0) return reply(Error::kNoPerm);
  insert(v, static_cast<Selector>(r.args[1]), CapType::kMemory,
         MemoryObject{m.target_pe, m.offset + r.args[2], r.args[3], r.args[4], false, m.node}, src->id);
  return reply(Error::kNone);
}

// args: vpe_sel, own_first, other_first, count, kind (delegate: own -> other)
Kernel::Result Kernel::exchange(Vpe& v, const SyscallRequest& r) {
  Error e = Error::kNone;
  auto* vcap = lookup(v, r.args[0], CapType::kVpe, e);
  if (vcap == nullptr) return reply(e);
  auto other = vpes_.find(std::get<VpeObject>(vcap->object).vpe);
  if (other == vpes_.end() || !other->second.alive) return reply(Error::kInvalidArgs);
  const bool obtain = r.args[4] == static_cast<std::uint64_t>(kif::ExchangeKind::kObtain);
  if (!obtain && r.args[4] != static_cast<std::uint64_t>(kif::ExchangeKind::kDelegate)) {
    return reply(Error::kInvalidArgs);
  }
  return reply(obtain ? clone_range(other->second, r.args[2], v, r.args[1], r.args[3])
                      : clone_range(v, r.args[1], other->second, r.args[2], r.args[3]));
}

// args: first, count, own (1: the capabilities too, 0: only what was derived from them)
// The answer comes when every kernel holding a part of the trees is done.
Kernel::Result Kernel::revoke(Vpe& v, const SyscallRequest& r) {
  const auto first = r.args[0];
  const auto count = r.args[1];
  if (count == 0 || count > kMaxRange || first > UINT32_MAX - count) return reply(Error::kInvalidArgs);
  if (first < kif::kFirstFreeSelector && r.args[2] != 0) return reply(Error::kNotRevocable);
  std::vector<std::pair<CapId, CapId>> roots;  // (root, its parent)
  bool any = false;
  for (std::uint64_t s = first; s < first + count; ++s) {
    auto it = v.caps.find(static_cast<Selector>(s));
    if (it == v.caps.end()) continue;
    any = true;
    const auto& cap = *it->second;
    if (r.args[2] != 0) {
      roots.emplace_back(cap.id, cap.parent);
    } else {
      for (CapId child : cap.children) roots.emplace_back(child, cap.id);  // wherever they are
    }
  }
  if (!any) return reply(Error::kNoSuchCap);
  const auto op = revoke_each(roots);
  if (finish_if_done(op)) return reply(Error::kNone);
  revocations_.at(op).syscall_caller = v.id;
  deferred_call_ = op;
  return std::nullopt;
}

// args: exit code
Kernel::Result Kernel::exit(Vpe& v, const SyscallRequest& r) {
  v.exit_code = static_cast<int>(r.args[0] & 0xffU);  // whoever waits learns it when the process ends
  return reply(Error::kNone);
}

// args: dst_sel; name: the command line (program and arguments, by spaces)
Kernel::Result Kernel::create_vpe(Vpe& v, const SyscallRequest& r) {
  if (auto e = check_free(v, r.args[0], 1); e != Error::kNone) return reply(e);
  std::vector<std::string> command;
  const std::string_view line(r.name, r.name_length);
  for (std::size_t at = 0; at < line.size();) {
    const auto end = std::min(line.find(' ', at), line.size());
    if (end > at) command.emplace_back(line.substr(at, end - at));
    at = end + 1;
  }
  if (command.empty()) return reply(Error::kInvalidArgs);
  PeId pe = 0;
  if (endpoints_.launch(command, pe) != Status::kOk)
    return reply(Error::kOutOfMemory);  // no PE or no program
  if (vpes_.count(pe) != 0) return reply(Error::kInvalidArgs);
  add_vpe(pe, pe);  // not started: it gets its syscall endpoints with VPECTRL start
  insert(v, static_cast<Selector>(r.args[0]), CapType::kVpe, VpeObject{pe, pe}, v.caps.at(kif::kSelSelf)->id);
  return reply(Error::kNone, pe);
}

// args: vpe_sel, op (start, wait)
Kernel::Result Kernel::vpe_ctrl(Vpe& v, const SyscallRequest& r) {
  Error e = Error::kNone;
  auto* cap = lookup(v, r.args[0], CapType::kVpe, e);
  if (cap == nullptr) return reply(e);
  const auto target_id = std::get<VpeObject>(cap->object).vpe;
  auto target = vpes_.find(target_id);
  if (target == vpes_.end() || target_id == v.id) return reply(Error::kInvalidArgs);
  auto& t = target->second;
  if (r.args[1] == static_cast<std::uint64_t>(kif::VpeOp::kStart)) {
    if (t.started || !t.alive) return reply(Error::kInvalidArgs);
    return reply(from_status(start(t)));
  }
  if (r.args[1] == static_cast<std::uint64_t>(kif::VpeOp::kWait)) {
    if (!t.alive) return reply(Error::kNone, static_cast<std::uint64_t>(t.exit_code));
    deferred_call_ = next_call_++;
    waits_[deferred_call_] = {v.id, target_id};
    return std::nullopt;
  }
  return reply(Error::kInvalidArgs);
}

std::vector<DeferredReply> Kernel::vpe_exited(VpeId vpe, int code) {
  std::vector<DeferredReply> failed;
  auto it = vpes_.find(vpe);
  if (it == vpes_.end() || !it->second.alive) return failed;
  auto& v = it->second;
  if (v.exit_code == 0) v.exit_code = code;
  for (auto w = waits_.begin(); w != waits_.end();) {
    if (w->second.target == vpe) {
      failed.push_back(
          {w->second.caller, w->first, reply(Error::kNone, static_cast<std::uint64_t>(v.exit_code))});
    }
    w = (w->second.target == vpe || w->second.caller == vpe) ? waits_.erase(w) : std::next(w);
  }
  std::vector<CapId> roots;
  for (const auto& [sel, cap] : v.caps) {
    if (cap->revoking == 0) roots.push_back(cap->id);
  }
  v.alive = false;    // its endpoints are gone with it: no invalidations
  revoke_now(roots);  // its services' calls fail (fail_calls_to), answered through take_finished
  v.activations.clear();
  std::erase_if(pending_, [&](const auto& p) { return !p.second.remote && p.second.caller == vpe; });
  std::erase_if(remote_calls_, [&](const auto& c) { return c.second.caller == vpe; });
  return failed;
}

// ---- services and sessions ---------------------------------------------------------

// args: dst_sel, gate_sel; name
Kernel::Result Kernel::create_srv(Vpe& v, const SyscallRequest& r) {
  Error e = Error::kNone;
  auto* gate = lookup(v, r.args[1], CapType::kSendGate, e);
  if (gate == nullptr) return reply(e);
  if (e = check_free(v, r.args[0], 1); e != Error::kNone) return reply(e);
  const std::string name(r.name, r.name_length);
  if (name.empty()) return reply(Error::kInvalidArgs);
  if (services_.count(name) != 0) return reply(Error::kExists);
  const auto free_ep = std::find(kernel_eps_used_.begin(), kernel_eps_used_.end(), false);
  if (free_ep == kernel_eps_used_.end()) return reply(Error::kOutOfMemory);
  const auto kep = static_cast<EpId>(free_ep - kernel_eps_used_.begin());
  const auto& g = std::get<SendGateObject>(gate->object);
  const SendConfig sc{
      g.pe, g.ep, g.label, kCreditsUnlimited, sizeof(kif::ServiceRequest), kKernelServiceReplyEp};
  if (endpoints_.config_send(config_.kernel_pe, kep, sc) != Status::kOk) return reply(Error::kEndpointFailed);
  kernel_eps_used_[kep] = true;
  auto service = std::make_shared<ServiceObject>(ServiceObject{name, v.id, g, kep, true, kNoCap});
  services_[name] = service;
  service->cap = insert(v, static_cast<Selector>(r.args[0]), CapType::kService, service, gate->id).id;
  if (name.size() <= kMaxServiceName) {  // longer names stay local
    auto announce = make_kernelcall(Kernelcall::kAnnounceService);
    announce.service = service->cap;
    set_name(announce, name);
    broadcast(announce);
  }
  return reply(Error::kNone);
}

Kernel::Result Kernel::defer(Vpe& caller, const SyscallRequest& r, std::shared_ptr<ServiceObject> service,
                             CapId service_cap, kif::ServiceRequest request) {
  deferred_call_ =
      queue_service_call(request, PendingCall{caller.id, r, std::move(service), service_cap, std::nullopt});
  if (deferred_call_ == 0) return reply(Error::kServiceBusy);
  return std::nullopt;
}

// The server hears `request`; its answer resumes `pending` (service_reply).
std::uint64_t Kernel::queue_service_call(kif::ServiceRequest request, PendingCall pending) {
  auto& queue = service_queues_[pending.service->kernel_ep];
  if (queue.size() >= config_.max_queued_service_calls) return 0;
  const auto id = next_call_++;
  queue.push_back({id, pending.service->kernel_ep, request, true});
  pending_[id] = std::move(pending);
  return id;
}

void Kernel::notify_service(EpId kernel_ep, kif::ServiceRequest request) {
  service_queues_[kernel_ep].push_back({next_call_++, kernel_ep, request, false});
}

void Kernel::fail_service_call(std::uint64_t call) {
  kif::ServiceReply failed{};
  failed.error = Error::kServiceFailed;
  if (auto d = service_reply(call, failed)) finished_.push_back(*d);
}

// Calls queued for the service, sent to it or waiting for its answer end
// now: its endpoint is gone (and may serve another service soon).
void Kernel::fail_calls_to(const ServiceObject& service) {
  service_queues_.erase(service.kernel_ep);
  std::vector<std::uint64_t> calls;
  for (const auto& [id, pc] : pending_) {
    if (pc.service.get() == &service) calls.push_back(id);
  }
  for (auto id : calls) fail_service_call(id);
}

void Kernel::pump_service_calls(const std::function<Status(const ServiceCall&)>& send) {
  for (auto q = service_queues_.begin(); q != service_queues_.end();) {
    auto& queue = q->second;
    while (!queue.empty()) {
      const ServiceCall call = queue.front();
      if (call.awaited && pending_.count(call.id) == 0) {  // its caller went meanwhile
        queue.pop_front();
        continue;
      }
      const Status st = send(call);
      if (st == Status::kFull || st == Status::kNoCredits) break;  // the server is behind: next round
      queue.pop_front();
      if (st != Status::kOk && call.awaited) fail_service_call(call.id);
    }
    q = queue.empty() ? service_queues_.erase(q) : std::next(q);
  }
}

std::vector<ServiceCall> Kernel::take_outbox() {
  std::vector<ServiceCall> out;
  pump_service_calls([&](const ServiceCall& c) {
    out.push_back(c);
    return Status::kOk;
  });
  return out;
}

// args: dst_sel, arg; name
Kernel::Result Kernel::create_sess(Vpe& v, const SyscallRequest& r) {
  if (auto e = check_free(v, r.args[0], 1); e != Error::kNone) return reply(e);
  const std::string_view name(r.name, r.name_length);
  auto s = services_.find(name);
  if (s == services_.end() || !s->second->alive) {
    auto remote = remote_services_.find(name);
    if (remote == remote_services_.end()) return reply(Error::kNoSuchService);
    auto m = make_kernelcall(Kernelcall::kOpenSession);
    m.args[0] = r.args[1];
    set_name(m, name);
    m.ids[0] = ids_.next(v.pe, v.id, CapType::kSession);
    m.count = 1;
    return call_remote(v, r, remote->second.kernel, m, {m.ids[0]});
  }
  return defer(v, r, s->second, s->second->cap, {kif::ServiceOp::kOpen, 0, 0, r.args[1]});
}

// args: dst_sel, srv_sel, ident
Kernel::Result Kernel::create_sess_at(Vpe& v, const SyscallRequest& r) {
  Error e = Error::kNone;
  auto* srv = lookup(v, r.args[1], CapType::kService, e);
  if (srv == nullptr) return reply(e);
  if (e = check_free(v, r.args[0], 1); e != Error::kNone) return reply(e);
  insert(v, static_cast<Selector>(r.args[0]), CapType::kSession,
         SessionObject{std::get<std::shared_ptr<ServiceObject>>(srv->object), r.args[2]}, srv->id);
  return reply(Error::kNone);
}

// args: sess_sel, first (own selectors: destination for OBTAIN, source for DELEGATE), count, arg
Kernel::Result Kernel::obtain_or_delegate(Vpe& v, const SyscallRequest& r) {
  Error e = Error::kNone;
  auto* sess = lookup(v, r.args[0], CapType::kSession, e);
  if (sess == nullptr) return reply(e);
  const auto& so = std::get<SessionObject>(sess->object);
  const bool obtain = r.opcode == Syscall::kObtain;
  if (so.remote_kernel != kLocalKernel) return obtain_or_delegate_remote(v, r, so);
  if (!so.service || !so.service->alive) return reply(Error::kServiceFailed);
  if (obtain) {
    if (e = check_free(v, r.args[1], r.args[2]); e != Error::kNone) return reply(e);
  } else if (r.args[2] == 0 || r.args[2] > kMaxRange) {
    return reply(Error::kInvalidArgs);
  }
  const auto op = obtain ? kif::ServiceOp::kObtain : kif::ServiceOp::kDelegate;
  return defer(v, r, so.service, sess->id, {op, so.ident, r.args[2], r.args[3]});
}

std::optional<DeferredReply> Kernel::service_reply(std::uint64_t call, const kif::ServiceReply& answer) {
  auto p = pending_.find(call);
  if (p == pending_.end()) return std::nullopt;  // late, duplicate or forged: ignored
  const PendingCall pc = p->second;
  pending_.erase(p);
  if (pc.remote) {
    auto checked = answer;
    if (!ids_left()) checked.error = Error::kOutOfMemory;
    answer_remote(pc, checked);
    return std::nullopt;
  }
  auto v = vpes_.find(pc.caller);
  if (v == vpes_.end() || !v->second.alive) return std::nullopt;
  auto& caller = v->second;
  const auto& r = pc.request;
  auto done = [&](Error e, std::uint64_t v0 = 0) { return DeferredReply{pc.caller, call, reply(e, v0)}; };
  if (answer.error != Error::kNone) return done(Error::kServiceFailed);
  if (!ids_left()) return done(Error::kOutOfMemory);
  if (!pc.service->alive) return done(Error::kServiceFailed);
  auto server = vpes_.find(pc.service->server);
  if (server == vpes_.end() || !server->second.alive) return done(Error::kServiceFailed);
  switch (r.opcode) {
    case Syscall::kCreateSess: {
      if (auto e = check_free(caller, r.args[0], 1); e != Error::kNone) return done(e);
      if (index_.count(pc.service_cap) == 0) return done(Error::kServiceFailed);
      insert(caller, static_cast<Selector>(r.args[0]), CapType::kSession,
             SessionObject{pc.service, answer.ident}, pc.service_cap);
      return done(Error::kNone, answer.ident);
    }
    case Syscall::kObtain:
      if (answer.count != r.args[2]) return done(Error::kServiceFailed);
      return done(clone_range(server->second, answer.first, caller, r.args[1], r.args[2]), answer.count);
    case Syscall::kDelegate:
      return done(clone_range(caller, r.args[1], server->second, answer.first, r.args[2]), r.args[2]);
    default: return done(Error::kInvalidArgs);
  }
}

std::string_view to_string(CapType t) {
  switch (t) {
    case CapType::kVpe: return "vpe";
    case CapType::kMemory: return "memory";
    case CapType::kSendGate: return "send gate";
    case CapType::kService: return "service";
    case CapType::kSession: return "session";
  }
  return "unknown";
}

}  // namespace vdtu::kernel
