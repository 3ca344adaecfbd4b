#pragma once
// For tests that run several kernels in one process: endpoint control that
// accepts every configuration (no node behind it), and the membership they
// share: kernel k owns PEs 10k .. 10k+9 and runs on PE 10k+9.

#include <string>
#include <vector>

#include "kernel/kernel.hpp"

namespace vdtu::testing {

using kernel::EndpointControl;
using kernel::KernelId;
using kernel::KernelMember;
using kernel::Membership;

class AcceptingEndpoints final : public EndpointControl {
 public:
  Status config_send(PeId, EpId, const SendConfig&) override { return Status::kOk; }
  Status config_receive(PeId, EpId, const ReceiveConfig&) override { return Status::kOk; }
  Status config_memory(PeId, EpId, const MemoryConfig&) override { return Status::kOk; }
  Status invalidate(PeId, EpId) override { return Status::kOk; }
  Status clear_memory(PeId, std::uint64_t, std::uint64_t) override { return Status::kOk; }
  Status launch(const std::vector<std::string>&, PeId&) override { return Status::kNoResources; }
};

inline PeId kernel_pe_of(KernelId k) { return static_cast<PeId>(10 * k + 9); }

// Members 0 .. count-1, each owning its ten PEs.
inline Membership ten_pes_each(KernelId count) {
  std::vector<KernelMember> members;
  for (KernelId k = 0; k < count; ++k) {
    members.push_back({k, 0, kernel_pe_of(k), static_cast<PeId>(10 * k), kernel_pe_of(k)});
  }
  return Membership(members);
}

}  // namespace vdtu::testing
