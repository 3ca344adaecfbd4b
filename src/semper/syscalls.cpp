#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "vdtu/semper.hpp"

namespace vdtu::semper {

using kif::Syscall;

Syscalls::Syscalls(Dtu& dtu, std::chrono::nanoseconds setup_timeout) : dtu_(dtu) {
  if (dtu.wait_for_endpoint(kif::kSyscallSendEp, EndpointKind::kSend, setup_timeout) != Status::kOk ||
      dtu.wait_for_endpoint(kif::kSyscallReplyEp, EndpointKind::kReceive, setup_timeout) != Status::kOk) {
    throw std::runtime_error("the kernel did not set up this VPE's syscall endpoints");
  }
}

Error Syscalls::call_raw(std::span<const std::byte> message, kif::SyscallReply& reply) {
  const auto label = next_label_++;
  if (dtu_.send(kif::kSyscallSendEp, message, label, SendMode::kWait) != Status::kOk)
    return Error::kServiceFailed;
  for (;;) {
    ReceivedMessage m;
    if (dtu_.receive(kif::kSyscallReplyEp, m, std::chrono::seconds(30)) != Status::kOk)
      return Error::kServiceFailed;
    const bool ours = m.header.label == label && m.payload.size() == sizeof(reply);
    if (ours) std::memcpy(&reply, m.payload.data(), sizeof(reply));
    dtu_.ack(m);
    if (ours) return reply.error;
  }
}

Error Syscalls::call(const kif::SyscallRequest& request, kif::SyscallReply& reply) {
  return call_raw(std::as_bytes(std::span(&request, 1)), reply);
}

Error Syscalls::call(Syscall op, std::initializer_list<std::uint64_t> args, std::string_view name,
                     kif::SyscallReply* reply_out) {
  kif::SyscallRequest r{};
  r.opcode = op;
  std::copy(args.begin(), args.end(), r.args);
  if (name.size() > kif::kMaxName) return Error::kInvalidArgs;
  r.name_length = name.size();
  std::copy(name.begin(), name.end(), r.name);
  kif::SyscallReply reply{};
  const Error e = call(r, reply);
  if (reply_out != nullptr) *reply_out = reply;
  return e;
}

Error Syscalls::noop() { return call(Syscall::kNoop, {}); }
Error Syscalls::create_gate(Selector vpe, Selector dst, EpId ep, std::uint64_t label, std::uint32_t credits) {
  return call(Syscall::kCreateGate, {vpe, dst, ep, label, credits});
}
Error Syscalls::attach_rb(EpId ep, std::uint8_t buffer_order, std::uint8_t slot_order) {
  return call(Syscall::kAttachRb, {ep, buffer_order, slot_order});
}
Error Syscalls::detach_rb(EpId ep) { return call(Syscall::kDetachRb, {ep}); }
Error Syscalls::activate(Selector cap, EpId ep, EpId reply_ep, std::uint32_t max_msg_size) {
  return call(Syscall::kActivate, {cap, ep, reply_ep, max_msg_size});
}
Error Syscalls::req_mem(Selector dst, std::uint64_t size, std::uint64_t perms) {
  return call(Syscall::kReqMem, {dst, size, perms});
}
Error Syscalls::derive_mem(Selector src, Selector dst, std::uint64_t offset, std::uint64_t size,
                           std::uint64_t perms) {
  return call(Syscall::kDeriveMem, {src, dst, offset, size, perms});
}
Error Syscalls::delegate_to(Selector vpe, Selector own_first, Selector other_first, std::uint32_t count) {
  return call(Syscall::kExchange,
              {vpe, own_first, other_first, count, static_cast<std::uint64_t>(kif::ExchangeKind::kDelegate)});
}
Error Syscalls::obtain_from(Selector vpe, Selector own_first, Selector other_first, std::uint32_t count) {
  return call(Syscall::kExchange,
              {vpe, own_first, other_first, count, static_cast<std::uint64_t>(kif::ExchangeKind::kObtain)});
}
Error Syscalls::revoke(Selector first, std::uint32_t count, bool own) {
  return call(Syscall::kRevoke, {first, count, own ? 1U : 0U});
}
Error Syscalls::create_srv(Selector dst, Selector gate, std::string_view name) {
  return call(Syscall::kCreateSrv, {dst, gate}, name);
}
Error Syscalls::create_sess(Selector dst, std::string_view name, std::uint64_t arg) {
  return call(Syscall::kCreateSess, {dst, arg}, name);
}
Error Syscalls::create_sess_at(Selector dst, Selector service, std::uint64_t ident) {
  return call(Syscall::kCreateSessAt, {dst, service, ident});
}
Error Syscalls::obtain(Selector session, Selector first, std::uint32_t count, std::uint64_t arg) {
  return call(Syscall::kObtain, {session, first, count, arg});
}
Error Syscalls::delegate(Selector session, Selector first, std::uint32_t count, std::uint64_t arg) {
  return call(Syscall::kDelegate, {session, first, count, arg});
}
Error Syscalls::exit(int code) { return call(Syscall::kExit, {static_cast<std::uint64_t>(code)}); }
Error Syscalls::create_vpe(Selector dst, std::string_view command, PeId* pe) {
  kif::SyscallReply reply{};
  const Error e = call(Syscall::kCreateVpe, {dst}, command, &reply);
  if (pe != nullptr) *pe = static_cast<PeId>(reply.values[0]);
  return e;
}
Error Syscalls::vpe_start(Selector vpe) {
  return call(Syscall::kVpeCtrl, {vpe, static_cast<std::uint64_t>(kif::VpeOp::kStart)});
}
Error Syscalls::vpe_wait(Selector vpe, int& exit_code) {
  kif::SyscallReply reply{};
  const Error e = call(Syscall::kVpeCtrl, {vpe, static_cast<std::uint64_t>(kif::VpeOp::kWait)}, {}, &reply);
  exit_code = static_cast<int>(reply.values[0]);
  return e;
}

}  // namespace vdtu::semper
