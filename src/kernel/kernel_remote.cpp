// Several kernels: kernelcalls, capabilities whose parent or children live on
// another kernel, and revocation that spans kernels.
//
// Every cross-kernel operation is a message and a continuation: the kernel
// records what it waits for (remote_calls_, pending_ with a remote requester,
// revocations_) and goes on serving; the answer resumes it. Messages between
// two kernels travel in order (one channel per direction), so an answer that
// creates capabilities always arrives before a revocation of their parents.
#include <algorithm>
#include <cstring>
#include <utility>

#include "kernel.hpp"
#include "syscall_reply.hpp"

namespace vdtu::kernel {

using kif::Error;
using kif::Selector;
using kif::Syscall;
using kif::SyscallReply;
using kif::SyscallRequest;

namespace {

bool transferable(CapType t) {
  return t == CapType::kVpe || t == CapType::kMemory || t == CapType::kSendGate;
}

// The object of a capability as four words (kernelcalls.hpp: CapDescription).
void describe(const CapObject& object, std::uint64_t (&w)[4]) {
  if (const auto* v = std::get_if<VpeObject>(&object)) {
    w[0] = v->vpe;
    w[1] = v->pe;
  } else if (const auto* m = std::get_if<MemoryObject>(&object)) {
    w[0] = std::uint64_t{m->target_pe} | (std::uint64_t{m->node} << 16U) | (m->perms << 32U);
    w[1] = m->offset;
    w[2] = m->size;
  } else if (const auto* g = std::get_if<SendGateObject>(&object)) {
    w[0] = std::uint64_t{g->pe} | (std::uint64_t{g->ep} << 16U);
    w[1] = g->label;
    w[2] = g->credits;
  }
}

std::optional<CapObject> object_of(CapType type, const std::uint64_t (&w)[4]) {
  switch (type) {
    case CapType::kVpe: return VpeObject{static_cast<VpeId>(w[0]), static_cast<PeId>(w[1])};
    case CapType::kMemory:
      if (((w[0] >> 32U) & ~std::uint64_t{kif::kPermRW}) != 0) return std::nullopt;
      return MemoryObject{static_cast<PeId>(w[0]),      w[1],  w[2],
                          (w[0] >> 32U) & kif::kPermRW, false, static_cast<std::uint16_t>(w[0] >> 16U)};
    case CapType::kSendGate:
      if (w[2] == 0 || (w[2] > 4096 && w[2] != kCreditsUnlimited)) return std::nullopt;
      return SendGateObject{static_cast<PeId>(w[0]), static_cast<EpId>(w[0] >> 16U), w[1],
                            static_cast<std::uint32_t>(w[2])};
    default: return std::nullopt;
  }
}

// Up to kMaxRemoteCaps ids of one message: none may repeat.
bool all_distinct(const CapId* ids, std::uint32_t count) {
  for (std::uint32_t i = 0; i < count; ++i) {
    for (std::uint32_t j = 0; j < i; ++j) {
      if (ids[i] == ids[j]) return false;
    }
  }
  return true;
}

// A child appears once in its parent's list, and children are revoked in list
// order: stopping at the match and moving the tail in one block makes
// revoking n children of one parent n small memmoves, where std::erase's
// full scan and element-wise shift made it cost a millisecond at n = 1000.
void drop_child(std::vector<CapId>& children, CapId child) {
  if (auto it = std::find(children.begin(), children.end(), child); it != children.end()) children.erase(it);
}

}  // namespace

const std::array<Kernel::KernelcallHandler, static_cast<std::size_t>(Kernelcall::kCount)>
    Kernel::kKernelcallHandlers = {
        &Kernel::kc_connect,             // kConnect
        &Kernel::kc_announce_service,    // kAnnounceService
        &Kernel::kc_service_gone,        // kServiceGone
        &Kernel::kc_open_session,        // kOpenSession
        &Kernel::kc_open_session_reply,  // kOpenSessionReply
        &Kernel::kc_obtain_or_delegate,  // kObtain
        &Kernel::kc_obtain_reply,        // kObtainReply
        &Kernel::kc_obtain_or_delegate,  // kDelegate
        &Kernel::kc_delegate_reply,      // kDelegateReply
        &Kernel::kc_revoke,              // kRevoke
        &Kernel::kc_revoke_done,         // kRevokeDone
        &Kernel::kc_remove_child,        // kRemoveChild
        &Kernel::kc_close_session,       // kCloseSession
        &Kernel::kc_no_clients,          // kNoClients
        &Kernel::kc_finished,            // kFinished
};

// ---- plumbing ----------------------------------------------------------------------

std::optional<KernelId> Kernel::owner_of(CapId id) const {
  if (config_.members.empty()) return config_.self;
  return config_.members.kernel_of(pe_of(id));
}

bool Kernel::is_local(CapId id) const { return owner_of(id) == config_.self; }

// Another kernel's ids never repeat either; one that does (a confused peer)
// is refused rather than linked twice.
bool Kernel::already_child(const Capability& parent, const CapId& child) {
  if (std::find(parent.children.begin(), parent.children.end(), child) == parent.children.end()) return false;
  ++refused_ids_;
  return true;
}

void Kernel::send_kernelcall(KernelId to, KernelcallMessage m) {
  if (to == config_.self || gone_.count(to) != 0 || config_.members.find(to) == nullptr) return;
  kernel_outbox_.push_back({to, m});
}

void Kernel::send_remove_child(CapId parent, CapId child) {
  auto m = make_kernelcall(Kernelcall::kRemoveChild);
  m.ids[0] = parent;
  m.ids[1] = child;
  if (auto k = owner_of(parent)) send_kernelcall(*k, m);
}

void Kernel::send_error(KernelId to, Kernelcall reply_op, std::uint64_t call, Error e) {
  auto m = make_kernelcall(reply_op, call);
  m.error = e;
  send_kernelcall(to, m);
}

// Revoke `id` on kernel `to`; it answers kRevokeDone(call) unless call is 0.
void Kernel::send_revoke(KernelId to, CapId id, std::uint64_t call) {
  auto m = make_kernelcall(Kernelcall::kRevoke, call);
  m.ids[0] = id;
  send_kernelcall(to, m);
}

void Kernel::send_close_session(KernelId to, CapId service_cap, std::uint64_t ident) {
  auto m = make_kernelcall(Kernelcall::kCloseSession);
  m.service = service_cap;
  m.args[1] = ident;
  send_kernelcall(to, m);
}

void Kernel::broadcast(const KernelcallMessage& m) {
  for (const auto& member : config_.members.members()) send_kernelcall(member.kernel, m);
}

void Kernel::connect_peers() { broadcast(make_kernelcall(Kernelcall::kConnect)); }

std::vector<OutgoingKernelcall> Kernel::take_kernelcalls() { return std::exchange(kernel_outbox_, {}); }

std::vector<DeferredReply> Kernel::take_finished() { return std::exchange(finished_, {}); }

void Kernel::finish(VpeId caller, std::uint64_t call, SyscallReply r) {
  auto v = vpes_.find(caller);
  if (v != vpes_.end() && v->second.alive) finished_.push_back({caller, call, r});
}

void Kernel::kernelcall(KernelId from, std::span<const std::byte> message) {
  KernelcallMessage m{};  // what the sender left off is zero (wire_bytes)
  if (message.size() < kMinKernelcallBytes || message.size() > sizeof(m) ||
      config_.members.find(from) == nullptr || from == config_.self) {
    ++malformed_kernelcalls_;
    return;
  }
  std::memcpy(&m, message.data(), message.size());
  const auto op = static_cast<std::uint64_t>(m.op);
  if (op >= kKernelcallHandlers.size() || m.count > kMaxRemoteCaps || m.name_length > kMaxServiceName) {
    ++malformed_kernelcalls_;
    return;
  }
  (this->*kKernelcallHandlers[op])(from, m);
}

bool Kernel::every_peer_in(const std::set<KernelId>& said) const {
  const auto& all = config_.members.members();
  return std::all_of(all.begin(), all.end(), [&](const auto& m) {
    return m.kernel == config_.self || said.count(m.kernel) != 0 || gone_.count(m.kernel) != 0;
  });
}

bool Kernel::cluster_has_no_clients() const {
  return alive_clients() == 0 && every_peer_in(peers_without_clients_);
}

void Kernel::announce_no_clients() {
  if (announced_no_clients_ || alive_clients() != 0) return;
  announced_no_clients_ = true;
  broadcast(make_kernelcall(Kernelcall::kNoClients));
}

// ---- syscalls that need another kernel ---------------------------------------------

Kernel::Result Kernel::call_remote(Vpe& caller, const SyscallRequest& r, KernelId kernel, KernelcallMessage m,
                                   std::vector<CapId> ids) {
  if (gone_.count(kernel) != 0) return reply(Error::kServiceFailed);
  const auto id = next_call_++;
  m.call = id;
  send_kernelcall(kernel, m);
  remote_calls_[id] = RemoteCall{caller.id, r, kernel, std::move(ids)};
  deferred_call_ = id;
  return std::nullopt;
}

std::optional<Kernel::RemoteCall> Kernel::take_remote_call(KernelId from, std::uint64_t call) {
  auto it = remote_calls_.find(call);
  if (it == remote_calls_.end() || it->second.kernel != from) return std::nullopt;  // late or forged
  auto rc = std::move(it->second);
  remote_calls_.erase(it);
  return rc;
}

// The ids of capabilities a remote OBTAIN creates are ours (our VPE, our
// counter); the server's kernel fills in their type, which only it knows.
Kernel::Result Kernel::obtain_or_delegate_remote(Vpe& v, const SyscallRequest& r, const SessionObject& so) {
  const bool obtain = r.opcode == Syscall::kObtain;
  const auto first = r.args[1];
  const auto count = r.args[2];
  if (count == 0 || count > kMaxRemoteCaps) return reply(Error::kInvalidArgs);
  auto m = make_kernelcall(obtain ? Kernelcall::kObtain : Kernelcall::kDelegate);
  m.service = so.service_cap;
  m.args[1] = so.ident;
  m.args[2] = count;
  m.args[3] = r.args[3];
  m.count = static_cast<std::uint32_t>(count);
  std::vector<CapId> ids;
  if (obtain) {
    if (auto e = check_free(v, first, count); e != Error::kNone) return reply(e);
    for (std::uint64_t i = 0; i < count; ++i) {
      m.ids[i] = ids_.next(v.pe, v.id, CapType{});
      ids.push_back(m.ids[i]);
    }
  } else {
    if (first > UINT32_MAX - count) return reply(Error::kInvalidArgs);
    for (std::uint64_t i = 0; i < count; ++i) {
      auto it = v.caps.find(static_cast<Selector>(first + i));
      if (it == v.caps.end() || it->second->revoking != 0) return reply(Error::kNoSuchCap);
      if (!transferable(it->second->type())) return reply(Error::kNotSupported);
      m.caps[i].id = it->second->id;
      describe(it->second->object, m.caps[i].words);
      ids.push_back(it->second->id);
    }
  }
  return call_remote(v, r, so.remote_kernel, m, std::move(ids));
}

// ---- kernelcalls -----------------------------------------------------------------------

void Kernel::kc_connect(KernelId, const KernelcallMessage&) {}

void Kernel::kc_announce_service(KernelId from, const KernelcallMessage& m) {
  if (m.service.is_null() || owner_of(m.service) != from) {
    ++malformed_kernelcalls_;
    return;
  }
  remote_services_[std::string(m.name, m.name_length)] = {from, m.service};
}

void Kernel::kc_service_gone(KernelId from, const KernelcallMessage& m) {
  auto it = remote_services_.find(std::string_view(m.name, m.name_length));
  if (it != remote_services_.end() && it->second.kernel == from) remote_services_.erase(it);
}

void Kernel::kc_open_session(KernelId from, const KernelcallMessage& m) {
  auto s = services_.find(std::string_view(m.name, m.name_length));
  if (s == services_.end() || !s->second->alive || m.count != 1 || m.ids[0].is_null() ||
      owner_of(m.ids[0]) != from) {
    send_error(from, Kernelcall::kOpenSessionReply, m.call, Error::kNoSuchService);
    return;
  }
  if (queue_service_call({kif::ServiceOp::kOpen, 0, 0, m.args[0]},
                         PendingCall{0, {}, s->second, s->second->cap, RemoteRequester{from, m}}) == 0) {
    send_error(from, Kernelcall::kOpenSessionReply, m.call, Error::kServiceBusy);
  }
}

void Kernel::kc_obtain_or_delegate(KernelId from, const KernelcallMessage& m) {
  const bool obtain = m.op == Kernelcall::kObtain;
  auto* service_cap = id_in_use(m.service) ? index_.at(m.service) : nullptr;
  auto* service =
      service_cap != nullptr ? std::get_if<std::shared_ptr<ServiceObject>>(&service_cap->object) : nullptr;
  bool valid = service != nullptr && (*service)->alive && m.count == m.args[2] && m.count > 0;
  for (std::uint32_t i = 0; valid && i < m.count; ++i) {
    const CapId& id = obtain ? m.ids[i] : m.caps[i].id;
    valid = !id.is_null() && owner_of(id) == from;  // a kernel speaks for its own caps only
  }
  if (valid && obtain && !all_distinct(m.ids, m.count)) {
    ++refused_ids_;
    valid = false;
  }
  const auto reply_op = obtain ? Kernelcall::kObtainReply : Kernelcall::kDelegateReply;
  if (!valid) {
    send_error(from, reply_op, m.call, Error::kServiceFailed);
    return;
  }
  const auto op = obtain ? kif::ServiceOp::kObtain : kif::ServiceOp::kDelegate;
  if (queue_service_call({op, m.args[1], m.args[2], m.args[3]},
                         PendingCall{0, {}, *service, service_cap->id, RemoteRequester{from, m}}) == 0) {
    send_error(from, reply_op, m.call, Error::kServiceBusy);
  }
}

// Our server answered a call that another kernel's VPE made.
void Kernel::answer_remote(const PendingCall& pc, const kif::ServiceReply& answer) {
  const auto& req = pc.remote->request;
  KernelcallMessage out{};
  out.call = req.call;
  auto fail = [&](Error e) {
    out.error = e;
    send_kernelcall(pc.remote->kernel, out);
  };
  auto server = vpes_.find(pc.service->server);
  const bool server_ok = pc.service->alive && server != vpes_.end() && server->second.alive;
  switch (req.op) {
    case Kernelcall::kOpenSession: {
      out.op = Kernelcall::kOpenSessionReply;
      if (answer.error != Error::kNone || !server_ok || !id_in_use(pc.service_cap))
        return fail(Error::kServiceFailed);
      auto& service_cap = *index_.at(pc.service_cap);
      if (already_child(service_cap, req.ids[0])) return fail(Error::kInvalidArgs);
      service_cap.children.push_back(req.ids[0]);
      out.args[0] = answer.ident;
      return send_kernelcall(pc.remote->kernel, out);
    }
    case Kernelcall::kObtain: {
      out.op = Kernelcall::kObtainReply;
      if (answer.error != Error::kNone || !server_ok || answer.count != req.count)
        return fail(Error::kServiceFailed);
      auto& srv = server->second;
      std::vector<Capability*> caps;
      for (std::uint32_t i = 0; i < req.count; ++i) {
        auto it = srv.caps.find(static_cast<Selector>(answer.first + i));
        if (it == srv.caps.end() || it->second->revoking != 0) return fail(Error::kNoSuchCap);
        if (!transferable(it->second->type())) return fail(Error::kNotSupported);
        if (already_child(*it->second, with_type(req.ids[i], it->second->type())))
          return fail(Error::kInvalidArgs);
        caps.push_back(it->second.get());
      }
      out.count = req.count;
      for (std::uint32_t i = 0; i < req.count; ++i) {
        const CapId child = with_type(req.ids[i], caps[i]->type());
        caps[i]->children.push_back(child);
        out.caps[i].id = child;
        out.caps[i].parent = caps[i]->id;
        describe(caps[i]->object, out.caps[i].words);
      }
      return send_kernelcall(pc.remote->kernel, out);
    }
    case Kernelcall::kDelegate: {
      out.op = Kernelcall::kDelegateReply;
      if (answer.error != Error::kNone || !server_ok) return fail(Error::kServiceFailed);
      auto& srv = server->second;
      if (auto e = check_free(srv, answer.first, req.count); e != Error::kNone) return fail(e);
      std::vector<CapObject> objects;
      for (std::uint32_t i = 0; i < req.count; ++i) {
        auto object = object_of(type_of(req.caps[i].id), req.caps[i].words);
        if (!object) return fail(Error::kInvalidArgs);
        objects.push_back(std::move(*object));
      }
      out.count = req.count;
      for (std::uint32_t i = 0; i < req.count; ++i) {
        const CapId parent = req.caps[i].id;
        out.ids[i] = insert(srv, static_cast<Selector>(answer.first + i), type_of(parent),
                            std::move(objects[i]), parent)
                         .id;
      }
      return send_kernelcall(pc.remote->kernel, out);
    }
    default: return;
  }
}

void Kernel::kc_open_session_reply(KernelId from, const KernelcallMessage& m) {
  auto rc = take_remote_call(from, m.call);
  if (!rc) return;
  const CapId id = rc->ids.at(0);
  if (m.error != Error::kNone) return finish(rc->caller, m.call, reply(m.error));
  auto v = vpes_.find(rc->caller);
  const auto service = remote_services_.find(std::string_view(rc->request.name, rc->request.name_length));
  const CapId service_cap = service != remote_services_.end() ? service->second.cap : kNoCap;
  const bool ok =
      v != vpes_.end() && v->second.alive && !service_cap.is_null() &&
      check_free(v->second, rc->request.args[0], 1) == Error::kNone &&
      insert_with_id(v->second, static_cast<Selector>(rc->request.args[0]),
                     SessionObject{nullptr, m.args[0], from, service_cap}, service_cap, id) != nullptr;
  if (!ok) {  // the caller went meanwhile (or the id is taken): undo the other side
    send_remove_child(service_cap, id);
    send_close_session(from, service_cap, m.args[0]);
    return finish(rc->caller, m.call, reply(Error::kServiceFailed));
  }
  finish(rc->caller, m.call, reply(Error::kNone, m.args[0]));
}

void Kernel::kc_obtain_reply(KernelId from, const KernelcallMessage& m) {
  auto rc = take_remote_call(from, m.call);
  if (!rc) return;
  if (m.error != Error::kNone) return finish(rc->caller, m.call, reply(m.error));
  auto v = vpes_.find(rc->caller);
  bool ok = v != vpes_.end() && v->second.alive && m.count == rc->ids.size() &&
            check_free(v->second, rc->request.args[1], m.count) == Error::kNone;
  std::vector<CapObject> objects;
  for (std::uint32_t i = 0; ok && i < m.count; ++i) {
    // Our ids with their type filled in, never one in use: checked before any is inserted.
    const auto& c = m.caps[i];
    if (id_in_use(c.id)) {
      ++refused_ids_;
      ok = false;
      break;
    }
    auto object = object_of(type_of(c.id), c.words);
    ok = object && with_type(c.id, CapType{}) == rc->ids[i] && !c.parent.is_null() &&
         owner_of(c.parent) == from;
    if (ok) objects.push_back(std::move(*object));
  }
  if (!ok) {
    for (std::uint32_t i = 0; i < m.count; ++i) send_remove_child(m.caps[i].parent, m.caps[i].id);
    return finish(rc->caller, m.call, reply(Error::kServiceFailed));
  }
  for (std::uint32_t i = 0; i < m.count; ++i) {
    insert_with_id(v->second, static_cast<Selector>(rc->request.args[1] + i), std::move(objects[i]),
                   m.caps[i].parent, m.caps[i].id);
  }
  finish(rc->caller, m.call, reply(Error::kNone, m.count));
}

// The server's kernel made children of our capabilities. A parent revoked
// meanwhile takes its new child with it.
void Kernel::kc_delegate_reply(KernelId from, const KernelcallMessage& m) {
  auto rc = take_remote_call(from, m.call);
  if (!rc) return;
  if (m.error != Error::kNone) return finish(rc->caller, m.call, reply(m.error));
  const auto count = std::min<std::size_t>(m.count, rc->ids.size());
  for (std::size_t i = 0; i < count; ++i) {
    if (m.ids[i].is_null() || owner_of(m.ids[i]) != from) {
      ++malformed_kernelcalls_;  // not a capability of the sender's
      continue;
    }
    auto parent = index_.find(rc->ids[i]);
    if (parent != index_.end() && already_child(*parent->second, m.ids[i])) continue;
    if (parent != index_.end() && parent->second->revoking == 0) {
      parent->second->children.push_back(m.ids[i]);
      continue;
    }
    send_revoke(from, m.ids[i], 0);  // nobody waits for its end
  }
  finish(rc->caller, m.call, reply(Error::kNone, count));
}

void Kernel::kc_revoke(KernelId from, const KernelcallMessage& m) {
  const auto op = begin_revocation();
  if (m.call != 0) revocations_.at(op).remote_waiters.emplace_back(from, m.call);
  if (is_local(m.ids[0])) revoke_subtree(op, m.ids[0], false, kNoCap);  // its parent is going anyway
  finish_if_done(op);
}

void Kernel::kc_revoke_done(KernelId from, const KernelcallMessage& m) {
  auto it = revocations_.find(m.call);
  if (it == revocations_.end()) return;
  auto waiting = it->second.waiting_on.find(from);
  if (waiting == it->second.waiting_on.end()) return;  // not one we asked
  it->second.waiting_on.erase(waiting);
  finish_if_done(m.call);
}

void Kernel::kc_remove_child(KernelId from, const KernelcallMessage& m) {
  auto parent = index_.find(m.ids[0]);
  if (parent == index_.end() || owner_of(m.ids[1]) != from) return;
  drop_child(parent->second->children, m.ids[1]);
}

void Kernel::kc_close_session(KernelId, const KernelcallMessage& m) {
  auto cap = index_.find(m.service);
  if (cap == index_.end()) return;
  auto* service = std::get_if<std::shared_ptr<ServiceObject>>(&cap->second->object);
  if (service == nullptr || !(*service)->alive) return;
  notify_service((*service)->kernel_ep, {kif::ServiceOp::kClose, m.args[1], 0, 0});
}

void Kernel::kc_no_clients(KernelId from, const KernelcallMessage&) { peers_without_clients_.insert(from); }

void Kernel::kc_finished(KernelId from, const KernelcallMessage&) { peers_finished_.insert(from); }

// A kernel may end only when every kernel is finished: until then a peer may
// still revoke capabilities derived from ours, and must get its answer.
bool Kernel::ready_to_end() {
  if (alive_vpes() > 0 || has_remote_work()) return false;
  if (!announced_finished_) {
    announced_finished_ = true;
    broadcast(make_kernelcall(Kernelcall::kFinished));
  }
  return every_peer_in(peers_finished_);
}

// ---- revocation ------------------------------------------------------------------------

std::uint64_t Kernel::begin_revocation() {
  const auto op = next_call_++;
  revocations_[op];
  return op;
}

// Marks and tears down the local part of the tree below `root`; asks the
// kernels of remote children to do theirs. A capability that another
// revocation took already is not ours to finish: we wait for that one.
// Marked capabilities stay linked to their parents until the revocation
// completes, so a later revocation of an ancestor finds them and joins.
void Kernel::revoke_subtree(std::uint64_t op, CapId root, bool detach_from_parent, CapId parent) {
  auto& rev = revocations_.at(op);
  const auto ask_owner = [&](CapId id) {
    const auto k = owner_of(id);
    if (!k || gone_.count(*k) != 0) return;
    send_revoke(*k, id, op);
    rev.waiting_on.insert(*k);
  };
  if (!is_local(root)) {
    ask_owner(root);
    if (!parent.is_null()) rev.unlink.emplace_back(parent, root);
    return;
  }
  if (detach_from_parent) rev.detach.push_back(root);
  std::vector<CapId> work{root};
  while (!work.empty()) {
    const CapId id = work.back();
    work.pop_back();
    auto it = index_.find(id);
    if (it == index_.end()) continue;
    Capability& cap = *it->second;
    if (cap.revoking != 0) {
      auto other = revocations_.find(cap.revoking);
      if (cap.revoking != op && other != revocations_.end() &&
          std::find(other->second.local_waiters.begin(), other->second.local_waiters.end(), op) ==
              other->second.local_waiters.end()) {
        other->second.local_waiters.push_back(op);
        ++rev.joined;
      }
      continue;
    }
    cap.revoking = op;
    rev.caps.push_back(id);
    tear_down(cap);
    for (CapId child : cap.children) {
      if (is_local(child)) {
        work.push_back(child);
      } else {
        ask_owner(child);
      }
    }
  }
}

bool Kernel::finish_if_done(std::uint64_t op) {
  auto it = revocations_.find(op);
  if (it == revocations_.end()) return true;
  if (!it->second.waiting_on.empty() || it->second.joined > 0) return false;
  const Revocation done = std::move(it->second);
  revocations_.erase(it);
  for (CapId root : done.detach) {
    auto r = index_.find(root);
    if (r != index_.end() && !r->second->parent.is_null() && !is_local(r->second->parent)) {
      send_remove_child(r->second->parent, root);
    }
  }
  for (CapId id : done.caps) erase_cap(id);
  for (const auto& [parent, child] : done.unlink) {
    if (auto p = index_.find(parent); p != index_.end()) drop_child(p->second->children, child);
  }
  if (done.syscall_caller) finish(*done.syscall_caller, op, reply(Error::kNone));
  for (const auto& [kernel, call] : done.remote_waiters) {
    send_kernelcall(kernel, make_kernelcall(Kernelcall::kRevokeDone, call));
  }
  for (auto waiter : done.local_waiters) {
    if (auto w = revocations_.find(waiter); w != revocations_.end()) {
      --w->second.joined;
      finish_if_done(waiter);
    }
  }
  return true;
}

void Kernel::erase_cap(CapId id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  const auto owner = it->second->owner;
  const auto selector = it->second->selector;
  if (const CapId parent = it->second->parent; !parent.is_null() && is_local(parent)) {
    if (auto p = index_.find(parent); p != index_.end()) drop_child(p->second->children, id);
  }
  // REQMEM's region returns only now that every copy, on any kernel, is
  // revoked: a remote holder could otherwise still write into its next owner's.
  if (const auto* mem = std::get_if<MemoryObject>(&it->second->object); mem != nullptr && mem->allocated) {
    global_memory_.release(mem->offset, mem->size);
  }
  index_.erase(it);
  vpes_.at(owner).caps.erase(selector);
}

std::uint64_t Kernel::revoke_each(const std::vector<std::pair<CapId, CapId>>& roots_and_parents) {
  const auto all = begin_revocation();
  for (const auto& [root, parent] : roots_and_parents) {
    const auto op = begin_revocation();
    revoke_subtree(op, root, true, parent);
    if (finish_if_done(op)) continue;
    revocations_.at(op).local_waiters.push_back(all);
    ++revocations_.at(all).joined;
  }
  return all;
}

void Kernel::revoke_now(const std::vector<CapId>& roots) {
  std::vector<std::pair<CapId, CapId>> without_parents;
  without_parents.reserve(roots.size());
  for (CapId root : roots) without_parents.emplace_back(root, kNoCap);
  finish_if_done(revoke_each(without_parents));
}

void Kernel::kernel_gone(KernelId k) {
  if (k == config_.self || !gone_.insert(k).second) return;
  std::erase_if(kernel_outbox_, [&](const auto& m) { return m.to == k; });
  std::erase_if(remote_services_, [&](const auto& s) { return s.second.kernel == k; });
  for (auto it = remote_calls_.begin(); it != remote_calls_.end();) {
    if (it->second.kernel != k) {
      ++it;
      continue;
    }
    finish(it->second.caller, it->first, reply(Error::kServiceFailed));
    it = remote_calls_.erase(it);
  }
  std::erase_if(pending_, [&](const auto& p) { return p.second.remote && p.second.remote->kernel == k; });
  // Its capabilities are gone: what we derived from them goes too, and
  // links to its children are dropped.
  std::vector<CapId> orphans;
  for (auto& [id, cap] : index_) {
    if (!cap->parent.is_null() && owner_of(cap->parent) == k && cap->revoking == 0) orphans.push_back(id);
    std::erase_if(cap->children, [&](CapId c) { return owner_of(c) == k; });
  }
  revoke_now(orphans);
  std::vector<std::uint64_t> ops;
  for (auto& [op, rev] : revocations_) {
    if (rev.waiting_on.erase(k) > 0) ops.push_back(op);
  }
  for (auto op : ops) finish_if_done(op);
}

}  // namespace vdtu::kernel
