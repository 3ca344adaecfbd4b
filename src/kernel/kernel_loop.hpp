#pragma once
// Runs the kernel as a privileged PE: sets up every VPE's syscall endpoints
// and, with peers, a send endpoint to every other kernel; then serves
// syscalls, servers' answers, kernelcalls and PE exits until its VPEs are
// gone (and, with peers, no kernel has clients left).

#include <cstdint>
#include <vector>

#include "kernel.hpp"
#include "vdtu/dtu.hpp"

namespace vdtu::kernel {

struct Grant {
  VpeId holder = 0;
  VpeId target = 0;
  kif::Selector selector = 0;
};

struct KernelBoot {
  std::vector<PeId> vpes;     // the PEs of this kernel's partition that run VPEs
  std::vector<Grant> grants;  // VPE capabilities handed out at boot
  std::uint64_t global_memory_bytes = std::uint64_t{64} << 20;
  std::uint64_t pe_memory_bytes = std::uint64_t{1} << 20;
  std::uint64_t global_memory_offset = 0;  // where this kernel's share of it starts
  // Several kernels: this one's id and node, and every kernel (itself too).
  KernelId self = 0;
  std::uint16_t node = 0;
  std::vector<KernelMember> members;
};

// Returns the process exit code.
int run_kernel(Dtu& dtu, const KernelBoot& boot);

}  // namespace vdtu::kernel
