#pragma once
// The answer to a syscall, for the kernel's handlers (local and remote).

#include <cstdint>

#include "vdtu/kif.hpp"

namespace vdtu::kernel {

inline kif::SyscallReply reply(kif::Error e, std::uint64_t v0 = 0, std::uint64_t v1 = 0) {
  kif::SyscallReply r;
  r.error = e;
  r.values[0] = v0;
  r.values[1] = v1;
  return r;
}

}  // namespace vdtu::kernel
