#pragma once
// The vhost-user part of `vdtu bench switch`.

#include "report.hpp"
#include "suites.hpp"

namespace vdtu::bench {

// DPDK testpmd's virtio-user as generator and sink (flowgen mode, two ports)
// on two vhost-user ports of `vdtu switch`, and, in the same run, on the two
// ports of testpmd's own vhost PMD in io-forward mode. Notes and skips when
// dpdk-testpmd is not installed.
void run_vhost_cases(Reporter& reporter, const SuiteOptions& options);

}  // namespace vdtu::bench
