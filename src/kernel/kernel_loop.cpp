#include "kernel_loop.hpp"

#include <fmt/core.h>

#include <cstring>
#include <map>

namespace vdtu::kernel {
namespace {

using namespace std::chrono_literals;

constexpr ReceiveConfig kSyscallBuffer{11, 9};       // 512-byte slots
constexpr ReceiveConfig kServiceReplyBuffer{13, 7};  // 128-byte slots

class DtuEndpointControl final : public EndpointControl {
 public:
  explicit DtuEndpointControl(Dtu& dtu) : dtu_(dtu) {}
  Status config_send(PeId pe, EpId ep, const SendConfig& c) override { return dtu_.config_send(pe, ep, c); }
  Status config_receive(PeId pe, EpId ep, const ReceiveConfig& c) override {
    return dtu_.config_receive(pe, ep, c);
  }
  Status config_memory(PeId pe, EpId ep, const MemoryConfig& c) override {
    return dtu_.config_memory(pe, ep, c);
  }
  Status invalidate(PeId pe, EpId ep) override { return dtu_.invalidate(pe, ep); }
  Status launch(const std::vector<std::string>& command, PeId& pe) override {
    return dtu_.launch(command, pe);
  }

 private:
  Dtu& dtu_;
};

template <class T>
std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span(&value, 1));
}

class Loop {
 public:
  Loop(Dtu& dtu, const KernelBoot& boot)
      : dtu_(dtu),
        control_(dtu),
        kernel_({dtu.pe(), dtu.endpoint_count(), boot.global_memory_bytes, boot.pe_memory_bytes}, control_) {}

  bool boot(const KernelBoot& boot) {
    const PeId self = dtu_.pe();
    if (dtu_.config_receive(self, kKernelSyscallEp, kSyscallBuffer) != Status::kOk ||
        dtu_.config_receive(self, kKernelServiceReplyEp, kServiceReplyBuffer) != Status::kOk) {
      return false;
    }
    for (PeId pe : boot.vpes) {
      if (kernel_.boot_vpe(pe, pe) != Status::kOk) {
        fmt::print(stderr, "kernel: cannot set up the syscall endpoints of PE {}\n", pe);
        return false;
      }
    }
    for (const auto& g : boot.grants) {
      if (kernel_.grant_vpe(g.holder, g.target, g.selector) != kif::Error::kNone) {
        fmt::print(stderr, "kernel: bad grant {}:{}:{}\n", g.holder, g.target, g.selector);
        return false;
      }
    }
    return true;
  }

  int run() {
    while (kernel_.alive_vpes() > 0) {
      dtu_.wait(100ms);
      handle_exits();
      serve_syscalls();
      serve_service_replies();
    }
    return 0;
  }

 private:
  void answer(const ReceivedMessage& m, const kif::SyscallReply& r) {
    if (dtu_.reply(m, bytes_of(r)) != Status::kOk) dtu_.ack(m);  // the caller died meanwhile
  }

  void serve_syscalls() {
    ReceivedMessage m;
    while (dtu_.fetch(kKernelSyscallEp, m) == Status::kOk) {
      // A server that answered us and then made a syscall published the
      // answer first; take it first, or the syscall would miss its effects
      // (e.g. activating a capability the answer delivers).
      if (kernel_.has_pending_calls()) serve_service_replies();
      const auto caller = static_cast<VpeId>(m.header.label);  // set by us at boot, not by the sender
      std::uint64_t deferred = 0;
      if (auto r = kernel_.syscall(caller, m.payload, deferred)) {
        answer(m, *r);
      } else {
        waiting_[deferred] = m;
      }
      send_service_calls();
    }
  }

  void send_service_calls() {
    for (const auto& call : kernel_.take_outbox()) {
      if (dtu_.send(call.kernel_ep, bytes_of(call.request), call.id, SendMode::kWait, 1s) == Status::kOk)
        continue;
      kif::ServiceReply failed{};
      failed.error = kif::Error::kServiceFailed;
      finish(kernel_.service_reply(call.id, failed));
    }
  }

  void serve_service_replies() {
    ReceivedMessage m;
    while (dtu_.fetch(kKernelServiceReplyEp, m) == Status::kOk) {
      kif::ServiceReply r{};
      const std::uint64_t call = m.header.label;
      const bool well_formed = m.payload.size() == sizeof(r);
      if (well_formed) std::memcpy(&r, m.payload.data(), sizeof(r));
      dtu_.ack(m);
      if (!well_formed) r.error = kif::Error::kMalformed;
      finish(kernel_.service_reply(call, r));
    }
  }

  void finish(const std::optional<DeferredReply>& d) {
    if (!d) return;
    auto it = waiting_.find(d->call);
    if (it == waiting_.end()) return;
    answer(it->second, d->reply);
    waiting_.erase(it);
  }

  void handle_exits() {
    const auto exits = dtu_.take_exits();
    if (exits.empty()) return;
    // A server that answered and then exited published the answer first:
    // take it before declaring the service dead.
    serve_service_replies();
    for (const auto& e : exits) {
      for (const auto& done : kernel_.vpe_exited(e.pe, e.code)) finish(done);
      std::erase_if(waiting_, [&](const auto& w) { return w.second.header.label == e.pe; });
    }
    // Only servers left: tell them to shut down, so they can end.
    if (!shut_down_ && kernel_.alive_vpes() > 0 && kernel_.alive_clients() == 0) {
      kernel_.shut_down_services();
      shut_down_ = true;
    }
    send_service_calls();  // CLOSEs of sessions that ended with their VPEs, SHUTDOWNs
  }

  Dtu& dtu_;
  DtuEndpointControl control_;
  Kernel kernel_;
  std::map<std::uint64_t, ReceivedMessage> waiting_;  // deferred syscalls by call id
  bool shut_down_ = false;
};

}  // namespace

int run_kernel(Dtu& dtu, const KernelBoot& boot) {
  if (!dtu.privileged()) {
    fmt::print(stderr, "kernel: this PE is not privileged\n");
    return 2;
  }
  Loop loop(dtu, boot);
  if (!loop.boot(boot)) return 3;
  return loop.run();
}

}  // namespace vdtu::kernel
