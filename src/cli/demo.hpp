#pragma once

#include <cstdint>

namespace vdtu::cli {

struct DemoOptions {
  std::uint64_t messages = 1'000'000;
};

// Runs the demo scenario; prints one line per check and "N passed, M failed".
// Returns the process exit code.
int run_demo(const DemoOptions& options);

}  // namespace vdtu::cli
