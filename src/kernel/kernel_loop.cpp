#include "kernel_loop.hpp"
#include "common/log.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <thread>

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
  Status clear_memory(PeId pe, std::uint64_t offset, std::uint64_t size) override {
    return dtu_.clear_memory(pe, offset, size);
  }
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

constexpr ReceiveConfig kKernelcallBuffer{kKernelcallSlotOrder + 6, kKernelcallSlotOrder};  // 64 slots
// Peers and VPEs on this node may start after us: the node says
// kNotConfigured for a PE of its range that does not run yet. The patience
// is per PE, not for all of them: a node starting a thousand PEs on a busy
// machine may take far longer than this for all of them.
constexpr auto kStartPatience = 10s;

KernelConfig config_for(const Dtu& dtu, const KernelBoot& boot) {
  KernelConfig c;
  c.kernel_pe = dtu.pe();
  c.endpoints_per_pe = dtu.endpoint_count();
  c.global_memory_bytes = boot.global_memory_bytes;
  c.pe_memory_bytes = boot.pe_memory_bytes;
  c.global_memory_offset = boot.global_memory_offset;
  c.self = boot.self;
  c.node = boot.node;
  c.members = Membership(boot.members);
  return c;
}

class Loop {
 public:
  Loop(Dtu& dtu, const KernelBoot& boot)
      : dtu_(dtu), control_(dtu), kernel_(config_for(dtu, boot), control_), self_(boot.self) {
    for (std::size_t i = 0; i < boot.members.size(); ++i) {
      if (boot.members[i].kernel != boot.self) {
        Peer p;
        p.kernel = boot.members[i].kernel;
        p.pe = boot.members[i].kernel_pe;
        p.ep = static_cast<EpId>(kKernelFirstPeerEp + i);
        peers_.push_back(std::move(p));
      }
    }
  }

  bool boot(const KernelBoot& boot) {
    const PeId self = dtu_.pe();
    if (dtu_.config_receive(self, kKernelSyscallEp, kSyscallBuffer) != Status::kOk ||
        dtu_.config_receive(self, kKernelServiceReplyEp, kServiceReplyBuffer) != Status::kOk) {
      return false;
    }
    if (!peers_.empty() && !connect_peers()) return false;
    for (PeId pe : boot.vpes) {
      const auto deadline = std::chrono::steady_clock::now() + kStartPatience;
      Status st = Status::kNotConfigured;
      while ((st = kernel_.boot_vpe(pe, pe)) == Status::kNotConfigured &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(2ms);
      }
      // A VPE that ended before we reached it is an exit like any other: the
      // node reports it (to us too), and the kernel revokes what it held.
      if (st == Status::kPeerGone) continue;
      if (st != Status::kOk) {
        spdlog::error("kernel {} PE {}: cannot set up the syscall endpoints of PE {}: {}", self_, dtu_.pe(),
                      pe, to_string(st));
        return false;
      }
    }
    for (const auto& g : boot.grants) {
      if (kernel_.grant_vpe(g.holder, g.target, g.selector) != kif::Error::kNone) {
        spdlog::error("kernel {} PE {}: bad grant {}:{}:{}", self_, dtu_.pe(), g.holder, g.target,
                      g.selector);
        return false;
      }
    }
    return true;
  }

  int run() {
    while (!finished()) {
      // The default polling window also while another kernel owes an answer:
      // a longer one kept the CPU from the node loops that carry that answer
      // (a chain revocation across nodes took 7x longer with 1 ms).
      dtu_.wait(queued() ? 1ms : 100ms);
      check_peers();
      handle_exits();
      serve_syscalls();
      serve_service_replies();
      serve_kernelcalls();
      if (!peers_.empty()) kernel_.announce_no_clients();
      // Only servers left anywhere: nobody can call them any more, they may
      // end. (Before any VPE exits, too: a cluster of servers alone ends.)
      if (!shut_down_ && kernel_.alive_vpes() > 0 && kernel_.cluster_has_no_clients()) {
        kernel_.shut_down_services();
        shut_down_ = true;
      }
      flush();
      dtu_.publish({kernel_.capability_count(), kernel_.alive_vpes(), syscalls_served_, kernelcalls_served_});
    }
    return 0;
  }

 private:
  // For `vdtu stat` (published on the kernel's PE page each round).
  std::uint64_t syscalls_served_ = 0;
  std::uint64_t kernelcalls_served_ = 0;

  struct Peer {
    KernelId kernel = 0;
    PeId pe = 0;
    EpId ep = 0;
    bool gone = false;
    std::deque<KernelcallMessage> queue;  // what the channel could not take yet (never dropped)
  };

  // A send endpoint to every other kernel's kernelcall endpoint, labelled
  // with our id. A peer on this node may not run or have its endpoint yet:
  // retry. One that ended already is gone, as if it had ended later.
  bool connect_peers() {
    if (dtu_.config_receive(dtu_.pe(), kKernelcallEp, kKernelcallBuffer) != Status::kOk) return false;
    for (auto& p : peers_) {
      const auto deadline = std::chrono::steady_clock::now() + kStartPatience;
      const SendConfig gate{p.pe,      kKernelcallEp, self_, kCreditsUnlimited, sizeof(KernelcallMessage),
                            kNoReplyEp};
      Status st = Status::kNotConfigured;
      while ((st = dtu_.config_send(dtu_.pe(), p.ep, gate)) == Status::kNotConfigured &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(2ms);
      }
      if (st == Status::kPeerGone) {
        spdlog::warn("kernel {} PE {}: kernel {} on PE {} ended before we started", self_, dtu_.pe(),
                     p.kernel, p.pe);
        p.gone = true;
        kernel_.kernel_gone(p.kernel);
        continue;
      }
      if (st != Status::kOk) {
        spdlog::error("kernel {} PE {}: cannot reach kernel {} on PE {}: {}", self_, dtu_.pe(), p.kernel,
                      p.pe, to_string(st));
        return false;
      }
    }
    kernel_.connect_peers();
    return true;
  }

  [[nodiscard]] bool peers_queued() const {
    return std::any_of(peers_.begin(), peers_.end(), [](const Peer& p) { return !p.queue.empty(); });
  }
  // Messages that wait for room in a channel: retried every millisecond.
  [[nodiscard]] bool queued() const { return peers_queued() || kernel_.has_queued_service_calls(); }

  bool finished() {
    if (kernel_.alive_vpes() > 0) return false;
    if (peers_.empty()) return true;
    const bool ready = kernel_.ready_to_end();
    flush();  // the kFinished announcement
    return ready && !peers_queued();
  }

  // A peer whose endpoint the node removed is gone (its PE or node ended).
  void check_peers() {
    for (auto& p : peers_) {
      if (p.gone || dtu_.endpoint_kind(p.ep) == EndpointKind::kSend) continue;
      p.gone = true;
      p.queue.clear();
      spdlog::info("kernel {} PE {}: kernel {} is gone", self_, dtu_.pe(), p.kernel);
      kernel_.kernel_gone(p.kernel);
    }
  }

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
      ++syscalls_served_;
      std::uint64_t deferred = 0;
      if (auto r = kernel_.syscall(caller, m.payload, deferred)) {
        answer(m, *r);
      } else {
        waiting_[deferred] = m;
      }
      flush();
    }
  }

  void serve_kernelcalls() {
    if (peers_.empty()) return;
    ReceivedMessage m;
    while (dtu_.fetch(kKernelcallEp, m) == Status::kOk) {
      kernel_.kernelcall(static_cast<KernelId>(m.header.label), m.payload);  // label: the node's, trusted
      ++kernelcalls_served_;
      dtu_.ack(m);
      flush();
    }
  }

  // Everything the kernel produced: service calls, kernelcalls, answers.
  void flush() {
    send_service_calls();
    for (auto& out : kernel_.take_kernelcalls()) {
      for (auto& p : peers_) {
        if (p.kernel == out.to && !p.gone) p.queue.push_back(out.message);
      }
    }
    for (auto& p : peers_) {
      while (!p.queue.empty()) {
        const auto st = dtu_.send(p.ep, wire_bytes(p.queue.front()));
        if (st == Status::kFull || st == Status::kNoCredits) break;  // later; the peer is draining
        if (st != Status::kOk) break;                                // check_peers decides
        p.queue.pop_front();
      }
    }
    for (const auto& d : kernel_.take_finished()) finish(d);
  }

  // Never waits: a server that does not take its calls keeps them in its
  // queue, and the kernel serves everyone else meanwhile.
  void send_service_calls() {
    kernel_.pump_service_calls([&](const ServiceCall& call) {
      return dtu_.send(call.kernel_ep, bytes_of(call.request), call.id, SendMode::kFail);
    });
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
    kernel_.announce_no_clients();
    flush();  // CLOSEs of sessions that ended with their VPEs, revocations
  }

  Dtu& dtu_;
  DtuEndpointControl control_;
  Kernel kernel_;
  KernelId self_ = 0;
  std::vector<Peer> peers_;
  std::map<std::uint64_t, ReceivedMessage> waiting_;  // deferred syscalls by call id
  bool shut_down_ = false;
};

}  // namespace

int run_kernel(Dtu& dtu, const KernelBoot& boot) {
  init_logging();
  if (!dtu.privileged()) {
    spdlog::error("kernel PE {}: this PE is not privileged", dtu.pe());
    return 2;
  }
  Loop loop(dtu, boot);
  if (!loop.boot(boot)) return 3;
  return loop.run();
}

}  // namespace vdtu::kernel
