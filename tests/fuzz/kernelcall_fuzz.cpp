// Two honest kernels and a hostile third one in one process. The fuzzer's
// bytes are a script: syscalls of the honest kernels' VPEs (so there are
// services, sessions and capabilities to talk about), kernelcalls between
// the honest kernels delivered in order, arbitrary kernelcalls "from" the
// hostile kernel (raw bytes, or a message one of them sent it, changed:
// answers with the right call number and forged ids), servers that take or
// refuse their calls and answer anything, and the hostile kernel vanishing.
// Findings: any crash or sanitizer report; afterwards, on each honest kernel,
// every capability is found under its own id and every local parent exists
// and lists its child.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "kernel/kernel.hpp"
#include "support/kernel_fixture.hpp"

namespace {

using namespace vdtu;
using namespace vdtu::kernel;
using vdtu::testing::AcceptingEndpoints;

constexpr KernelId kHonest = 2;   // kernels 0 and 1
constexpr KernelId kHostile = 2;  // kernel 2 speaks only through the fuzzer
// Kernel k owns PEs 10k .. 10k+9 and runs on 10k+9; VPE id = PE id.
constexpr VpeId vpe_on(KernelId k, int i) { return static_cast<VpeId>(10 * k + i); }

struct Sent {
  KernelId from = 0;
  KernelId to = 0;
  KernelcallMessage message;
};

class Cluster {
 public:
  Cluster() {
    for (KernelId k = 0; k < kHonest; ++k) {
      KernelConfig c;
      c.kernel_pe = testing::kernel_pe_of(k);
      c.self = k;
      c.members = testing::ten_pes_each(kHostile + 1);
      c.global_memory_bytes = 1 << 16;
      c.pe_memory_bytes = 1 << 12;
      c.global_memory_offset = std::uint64_t{k} << 16;
      c.max_queued_service_calls = 4;
      kernels_.push_back(std::make_unique<Kernel>(c, endpoints_));
      for (int i = 0; i < 3; ++i) kernels_[k]->boot_vpe(vpe_on(k, i), vpe_on(k, i));
      kernels_[k]->grant_vpe(vpe_on(k, 0), vpe_on(k, 1), 10);
      kernels_[k]->connect_peers();
    }
  }

  void run(FuzzedDataProvider& in) {
    for (int op = 0; op < 256 && in.remaining_bytes() > 0; ++op) {
      const auto k = in.ConsumeIntegralInRange<KernelId>(0, kHonest - 1);
      switch (in.ConsumeIntegralInRange<int>(0, 7)) {
        case 0: syscall(in, k); break;
        case 1: deliver(in.ConsumeIntegralInRange<int>(1, 16)); break;
        case 2: hostile_raw(in, k); break;
        case 3: hostile_answer(in, k); break;
        case 4: serve(in, k); break;
        case 5: service_reply(in, k); break;
        case 6: kernels_[k]->vpe_exited(vpe_on(k, in.ConsumeIntegralInRange<int>(0, 2))); break;
        case 7: kernels_[k]->kernel_gone(kHostile); break;
      }
      collect();
    }
    deliver(1000);
    for (KernelId k = 0; k < kHonest; ++k) check_tree(k);
  }

 private:
  void syscall(FuzzedDataProvider& in, KernelId k) {
    kif::SyscallRequest r{};
    r.opcode = static_cast<kif::Syscall>(in.ConsumeIntegralInRange<std::uint64_t>(0, 20));
    for (auto& a : r.args) a = in.ConsumeIntegralInRange<std::uint64_t>(0, 70);
    if (in.ConsumeBool())
      r.args[in.ConsumeIntegralInRange<int>(0, kif::kMaxArgs - 1)] = in.ConsumeIntegral<std::uint64_t>();
    const auto name = in.ConsumeRandomLengthString(kif::kMaxName);
    r.name_length = name.size();
    std::memcpy(r.name, name.data(), name.size());
    std::uint64_t deferred = 0;
    const auto reply = kernels_[k]->syscall(vpe_on(k, in.ConsumeIntegralInRange<int>(0, 2)),
                                            std::as_bytes(std::span(&r, 1)), deferred);
    if (!reply && deferred != 0) calls_[k].push_back(deferred);
  }

  void collect() {
    for (KernelId k = 0; k < kHonest; ++k) {
      for (auto& out : kernels_[k]->take_kernelcalls()) {
        if (out.to == kHostile) {
          if (to_hostile_.size() < 64) to_hostile_.push_back({k, out.to, out.message});
        } else if (wire_.size() < 1024) {
          wire_.push_back({k, out.to, out.message});
        }
      }
      kernels_[k]->take_finished();
    }
  }

  void deliver(int count) {
    for (int i = 0; i < count && !wire_.empty(); ++i) {
      const auto m = wire_.front();
      wire_.pop_front();
      if (m.to < kHonest) kernels_[m.to]->kernelcall(m.from, std::as_bytes(std::span(&m.message, 1)));
      collect();
    }
  }

  // Any bytes at all, of any length, "from" the hostile kernel (or, rarely,
  // from a kernel that is not a member, or from the kernel itself).
  void hostile_raw(FuzzedDataProvider& in, KernelId k) {
    const auto bytes = in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 800));
    const KernelId from = in.ConsumeBool() ? kHostile : in.ConsumeIntegralInRange<KernelId>(0, 4);
    std::vector<std::byte> message(sizeof(KernelcallMessage));
    if (in.ConsumeBool()) {  // well-sized: the fields are what the fuzzer says
      std::copy_n(bytes.begin(), std::min(bytes.size(), message.size()), message.begin());
      KernelcallMessage m{};
      std::memcpy(&m, message.data(), sizeof(m));
      m.op = static_cast<Kernelcall>(static_cast<std::uint64_t>(m.op) %
                                     (static_cast<std::uint64_t>(Kernelcall::kCount) + 1));
      m.count %= kMaxRemoteCaps + 2;
      m.name_length %= kMaxServiceName + 2;
      std::memcpy(message.data(), &m, sizeof(m));
      kernels_[k]->kernelcall(from, message);
    } else {
      kernels_[k]->kernelcall(from, bytes);
    }
  }

  // A message an honest kernel sent the hostile one, turned into an answer
  // (or any kernelcall) with fields changed: ids of the honest kernels' own
  // capabilities, the hostile kernel's, or arbitrary.
  void hostile_answer(FuzzedDataProvider& in, KernelId k) {
    KernelcallMessage m{};
    if (!to_hostile_.empty()) {
      const auto& sent = to_hostile_[in.ConsumeIntegralInRange<std::size_t>(0, to_hostile_.size() - 1)];
      m = sent.message;
      k = sent.from;
    }
    m.op = static_cast<Kernelcall>(
        in.ConsumeIntegralInRange<std::uint64_t>(0, static_cast<std::uint64_t>(Kernelcall::kCount) - 1));
    m.error =
        in.ConsumeBool() ? kif::Error::kNone : static_cast<kif::Error>(in.ConsumeIntegral<std::uint8_t>());
    if (in.ConsumeBool()) m.count = in.ConsumeIntegralInRange<std::uint32_t>(0, kMaxRemoteCaps);
    for (int changes = in.ConsumeIntegralInRange<int>(0, 4); changes > 0; --changes) {
      const auto i = in.ConsumeIntegralInRange<std::size_t>(0, kMaxRemoteCaps - 1);
      switch (in.ConsumeIntegralInRange<int>(0, 5)) {
        case 0: m.ids[i] = some_id(in); break;
        case 1: m.caps[i].id = some_id(in); break;
        case 2: m.caps[i].parent = some_id(in); break;
        case 3:
          m.caps[i].words[in.ConsumeIntegralInRange<int>(0, 3)] = in.ConsumeIntegral<std::uint64_t>();
          break;
        case 4: m.service = some_id(in); break;
        case 5: m.args[in.ConsumeIntegralInRange<int>(0, 3)] = in.ConsumeIntegral<std::uint64_t>(); break;
      }
    }
    if (in.ConsumeBool()) {
      const auto name = in.ConsumeRandomLengthString(kMaxServiceName);
      set_name(m, name);
    }
    kernels_[k]->kernelcall(kHostile, std::as_bytes(std::span(&m, 1)));
  }

  // An id a kernel might plausibly be asked about: one of an honest VPE's
  // capabilities (with its type, or changed), the hostile kernel's, or any.
  CapId some_id(FuzzedDataProvider& in) {
    const auto k = in.ConsumeIntegralInRange<KernelId>(0, kHonest - 1);
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: {
        const auto* cap = kernels_[k]->find(vpe_on(k, in.ConsumeIntegralInRange<int>(0, 2)),
                                            in.ConsumeIntegralInRange<kif::Selector>(0, 70));
        if (cap != nullptr) return in.ConsumeBool() ? cap->id : with_type(cap->id, CapType{});
        return kNoCap;
      }
      case 1:
        return make_cap_id(static_cast<PeId>(20 + in.ConsumeIntegralInRange<int>(0, 9)), 20,
                           static_cast<CapType>(in.ConsumeIntegralInRange<int>(0, 6)),
                           in.ConsumeIntegralInRange<std::uint64_t>(0, 40));
      default: {
        CapId id{};
        const auto bytes = in.ConsumeBytes<std::byte>(sizeof(id));
        if (!bytes.empty()) std::memcpy(&id, bytes.data(), bytes.size());
        return id;
      }
    }
  }

  void serve(FuzzedDataProvider& in, KernelId k) {
    int room = in.ConsumeIntegralInRange<int>(0, 4);
    const auto refusal = in.ConsumeBool() ? Status::kFull : Status::kNotConfigured;
    kernels_[k]->pump_service_calls([&](const ServiceCall& c) {
      if (room-- <= 0) return refusal;
      if (c.awaited && service_calls_[k].size() < 64) service_calls_[k].push_back(c.id);
      return Status::kOk;
    });
  }

  void service_reply(FuzzedDataProvider& in, KernelId k) {
    kif::ServiceReply answer{};
    const auto bytes = in.ConsumeBytes<std::byte>(sizeof(answer));
    if (!bytes.empty()) std::memcpy(&answer, bytes.data(), bytes.size());
    if (in.ConsumeBool()) {
      answer.error = kif::Error::kNone;
      answer.count %= kMaxRemoteCaps + 1;
      answer.first %= 72;
    }
    auto& calls = service_calls_[k];
    const std::uint64_t call = calls.empty() || in.ConsumeBool()
                                   ? in.ConsumeIntegralInRange<std::uint64_t>(0, 64)
                                   : calls[in.ConsumeIntegralInRange<std::size_t>(0, calls.size() - 1)];
    kernels_[k]->service_reply(call, answer);
  }

  // Every capability is found under its own id; a local parent exists and
  // lists its child.
  void check_tree(KernelId k) const {
    const auto& kernel = *kernels_[k];
    for (int i = 0; i < 3; ++i) {
      for (kif::Selector s = 0; s < 80; ++s) {
        const auto* cap = kernel.find(vpe_on(k, i), s);
        if (cap == nullptr) continue;
        if (kernel.find(cap->id) != cap) std::abort();
        if (cap->parent.is_null() || pe_of(cap->parent) / 10 != k) continue;
        const auto* parent = kernel.find(cap->parent);
        if (parent == nullptr) {
          if (cap->revoking == 0) std::abort();
          continue;
        }
        if (std::find(parent->children.begin(), parent->children.end(), cap->id) == parent->children.end() &&
            cap->revoking == 0) {
          std::abort();
        }
      }
    }
  }

  AcceptingEndpoints endpoints_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::deque<Sent> wire_;         // between the honest kernels, in order
  std::vector<Sent> to_hostile_;  // what they told the hostile kernel
  std::vector<std::uint64_t> calls_[kHonest];
  std::vector<std::uint64_t> service_calls_[kHonest];
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Cluster cluster;
  cluster.run(in);
  return 0;
}
