#include "demo.hpp"

#include <fmt/core.h>

#include <exception>

#include "common/stop_signals.hpp"

namespace vdtu::cli {

int run_demo(const DemoOptions& options) {
  auto checks = channel_checks(options);
  for (auto& c : dtu_checks()) checks.push_back(std::move(c));
  for (auto& c : kernel_checks()) checks.push_back(std::move(c));
  for (auto& c : cluster_checks()) checks.push_back(std::move(c));
  for (auto& c : switch_checks()) checks.push_back(std::move(c));
  for (auto& c : vm_checks()) checks.push_back(std::move(c));
  int passed = 0;
  int failed = 0;
  for (const auto& check : checks) {
    bool ok = false;
    try {
      ok = check.run();
    } catch (const StoppedBySignal&) {  // the user wants to stop: no further checks
      throw;
    } catch (const std::exception& e) {
      fmt::print("  error: {}\n", e.what());
    }
    fmt::print("{} {}\n", ok ? "PASS" : "FAIL", check.name);
    (void)std::fflush(stdout);
    ++(ok ? passed : failed);
  }
  fmt::print("{} passed, {} failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace vdtu::cli
