#pragma once
// For benchmark VPEs: a failed syscall ends the run with its name and error,
// and one call is timed as the VPE sees it.

#include <fmt/core.h>

#include <chrono>
#include <stdexcept>

#include "vdtu/kif.hpp"

namespace vdtu::bench {

inline void require(kif::Error e, const char* what) {
  if (e != kif::Error::kNone) throw std::runtime_error(fmt::format("{}: {}", what, kif::to_string(e)));
}

template <class Op>
double time_ns(Op op) {
  const auto t = std::chrono::steady_clock::now();
  op();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace vdtu::bench
