#pragma once
// Benchmark suites reachable as `vdtu bench <suite>`.

#include "report.hpp"

namespace vdtu::bench {

struct SuiteOptions {
  bool quick = false;  // fewer iterations, for smoke tests
};

void run_channel_suite(Reporter& reporter, const SuiteOptions& options);

}  // namespace vdtu::bench
