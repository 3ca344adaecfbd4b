#pragma once
// For benchmark VPEs: a failed syscall ends the run with its name and error,
// a service accepts every session, and one call is timed as the VPE sees it.

#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>

#include "vdtu/kif.hpp"

namespace vdtu::bench {

inline void require(kif::Error e, const char* what) {
  if (e != kif::Error::kNone) throw std::runtime_error(fmt::format("{}: {}", what, kif::to_string(e)));
}

// A benchmark service's OPEN: every session is accepted, all alike.
inline kif::Error accept_any_session(std::uint64_t /*arg*/, std::uint64_t& ident) {
  ident = 1;
  return kif::Error::kNone;
}

template <class Op>
double time_ns(Op op) {
  const auto t = std::chrono::steady_clock::now();
  op();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace vdtu::bench
