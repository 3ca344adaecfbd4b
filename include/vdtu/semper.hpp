#pragma once
// The VPE side of the SemperOS kernel interface, in the spirit of M3's
// libm3: typed syscall wrappers, a server for the service protocol, and
// gates that hide endpoint activation.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "vdtu/dtu.hpp"
#include "vdtu/kif.hpp"

namespace vdtu::semper {

using kif::Error;
using kif::Selector;

class Syscalls {
 public:
  // Waits until the kernel has set up this VPE's syscall endpoints. A node
  // starts a kernel after its VPEs (it owns the PE ids below its own): with
  // a thousand VPEs on a busy machine that alone can take a minute or more
  // (only a VPE whose kernel never comes waits this out).
  explicit Syscalls(Dtu& dtu, std::chrono::nanoseconds setup_timeout = std::chrono::seconds(180));

  Error noop();
  Error create_gate(Selector vpe, Selector dst, EpId ep, std::uint64_t label, std::uint32_t credits);
  Error attach_rb(EpId ep, std::uint8_t buffer_order, std::uint8_t slot_order);
  Error detach_rb(EpId ep);
  Error activate(Selector cap, EpId ep, EpId reply_ep = kNoReplyEp, std::uint32_t max_msg_size = 0);
  Error req_mem(Selector dst, std::uint64_t size, std::uint64_t perms);
  Error derive_mem(Selector src, Selector dst, std::uint64_t offset, std::uint64_t size, std::uint64_t perms);
  Error delegate_to(Selector vpe, Selector own_first, Selector other_first, std::uint32_t count = 1);
  Error obtain_from(Selector vpe, Selector own_first, Selector other_first, std::uint32_t count = 1);
  Error revoke(Selector first, std::uint32_t count = 1, bool own = true);
  Error create_srv(Selector dst, Selector gate, std::string_view name);
  Error create_sess(Selector dst, std::string_view name, std::uint64_t arg = 0);
  Error create_sess_at(Selector dst, Selector service, std::uint64_t ident);
  Error obtain(Selector session, Selector first, std::uint32_t count, std::uint64_t arg = 0);
  Error delegate(Selector session, Selector first, std::uint32_t count, std::uint64_t arg = 0);
  Error exit(int code);
  // Starts `command` (program and arguments, separated by spaces) on a free PE
  // as a new VPE that waits until vpe_start; its VPE cap goes to `dst`.
  Error create_vpe(Selector dst, std::string_view command, PeId* pe = nullptr);
  Error vpe_start(Selector vpe);
  // Waits until the VPE ends; its exit code (128 + signal if killed).
  Error vpe_wait(Selector vpe, int& exit_code);

  // Any request, for tests and fuzzing the kernel from outside.
  Error call(const kif::SyscallRequest& request, kif::SyscallReply& reply);
  Error call_raw(std::span<const std::byte> message, kif::SyscallReply& reply);
  Dtu& dtu() { return dtu_; }

 private:
  Error call(kif::Syscall op, std::initializer_list<std::uint64_t> args, std::string_view name = {},
             kif::SyscallReply* reply = nullptr);
  Dtu& dtu_;
  std::uint64_t next_label_ = 1;
};

// A server: owns a receive endpoint for the service protocol and answers the
// kernel's OPEN, OBTAIN, DELEGATE and CLOSE through the callbacks.
class Server {
 public:
  struct Handlers {
    std::function<Error(std::uint64_t arg, std::uint64_t& ident)> open;
    std::function<Error(std::uint64_t ident, std::uint64_t count, std::uint64_t arg, Selector& first)> obtain;
    std::function<Error(std::uint64_t ident, std::uint64_t count, std::uint64_t arg, Selector& first)>
        delegate;
    std::function<void(std::uint64_t ident)> close;
  };

  // Attaches a receive buffer at `ep`, creates a gate for it at `gate_sel` and
  // registers service `name` at `service_sel`.
  Server(Syscalls& sys, std::string_view name, EpId ep, Selector gate_sel, Selector service_sel,
         Handlers handlers);
  [[nodiscard]] Error error() const { return error_; }
  // Answers one request; kTimeout if none came, kTerminated after the
  // kernel's SHUTDOWN (sent when only servers are left).
  Status serve_one(std::chrono::nanoseconds timeout);

 private:
  Syscalls& sys_;
  EpId ep_;
  Handlers handlers_;
  Error error_ = Error::kNone;
};

// A memory capability bound to an endpoint: read and write through the node.
class MemGate {
 public:
  MemGate(Syscalls& sys, Selector cap, EpId ep);
  [[nodiscard]] Error error() const { return error_; }
  Status read(std::uint64_t offset, std::span<std::byte> into);
  Status write(std::uint64_t offset, std::span<const std::byte> from);

 private:
  Syscalls& sys_;
  EpId ep_;
  Error error_;
};

}  // namespace vdtu::semper
