#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vdtu::cli {

struct DemoOptions {
  std::uint64_t messages = 1'000'000;
};

// One demonstrated property: a name and the code that shows it holds.
struct DemoCheck {
  std::string name;
  std::function<bool()> run;
};

std::vector<DemoCheck> channel_checks(const DemoOptions& options);
std::vector<DemoCheck> dtu_checks();
std::vector<DemoCheck> kernel_checks();
std::vector<DemoCheck> cluster_checks();
std::vector<DemoCheck> switch_checks();
// QEMU guests; none unless root with qemu-system-x86_64 installed.
std::vector<DemoCheck> vm_checks();

// Runs every check; prints one line per check and "N passed, M failed".
// Returns the process exit code.
int run_demo(const DemoOptions& options);

}  // namespace vdtu::cli
