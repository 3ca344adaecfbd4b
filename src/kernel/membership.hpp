#pragma once
// Which kernel owns which PE: the cluster's partition of global PE ids. A
// capability id names its PE, so its owner is one lookup away.

#include <cstdint>
#include <optional>
#include <vector>

#include "vdtu/dtu_types.hpp"

namespace vdtu::kernel {

struct KernelMember {
  std::uint16_t kernel = 0;
  std::uint16_t node = 0;
  PeId kernel_pe = 0;  // the PE the kernel runs on
  PeId first_pe = 0;   // its partition: first_pe .. last_pe
  PeId last_pe = 0;
};

class Membership {
 public:
  Membership() = default;
  explicit Membership(std::vector<KernelMember> members) : members_(std::move(members)) {}

  [[nodiscard]] std::optional<std::uint16_t> kernel_of(PeId pe) const {
    for (const auto& m : members_) {
      if (pe >= m.first_pe && pe <= m.last_pe) return m.kernel;
    }
    return std::nullopt;
  }
  [[nodiscard]] const KernelMember* find(std::uint16_t kernel) const {
    for (const auto& m : members_) {
      if (m.kernel == kernel) return &m;
    }
    return nullptr;
  }
  [[nodiscard]] const std::vector<KernelMember>& members() const { return members_; }
  [[nodiscard]] bool empty() const { return members_.empty(); }

 private:
  std::vector<KernelMember> members_;
};

}  // namespace vdtu::kernel
