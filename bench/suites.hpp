#pragma once
// Benchmark suites reachable as `vdtu bench <suite>`.

#include <string>
#include <vector>

#include "report.hpp"

namespace vdtu::bench {

struct SuiteOptions {
  bool quick = false;  // fewer iterations, for smoke tests
};

void run_channel_suite(Reporter& reporter, const SuiteOptions& options);
void run_dtu_suite(Reporter& reporter, const SuiteOptions& options);
void run_caps_suite(Reporter& reporter, const SuiteOptions& options);
void run_spanning_suite(Reporter& reporter, const SuiteOptions& options);
void run_session_suite(Reporter& reporter, const SuiteOptions& options);
void run_switch_suite(Reporter& reporter, const SuiteOptions& options);
// Needs root and qemu-system-x86_64.
void run_vm_suite(Reporter& reporter, const SuiteOptions& options);
void run_scale_suite(Reporter& reporter, const SuiteOptions& options);

// The PE side of the dtu suite (`vdtu pe-bench ROLE ARGS`, started by the node).
int run_pe_role(const std::string& role, const std::vector<std::string>& args);

}  // namespace vdtu::bench
