// A node killed while a revocation spans it: the surviving node's kernel
// finishes the revocation (the dead kernel's part went with it), fails what
// depended on the dead kernel with clear errors, and ends cleanly. The checks
// of those results run in the revoking VPE (kernel_test_vpe
// spanning-revoker); its node fails if any of them fails.
#include <gtest/gtest.h>

#include "cluster/cluster_launch.hpp"

namespace vdtu::cluster {
namespace {

TEST(ClusterKill, ANodeKilledDuringASpanningRevocationLeavesTheOtherWithDefinedResults) {
  ClusterSpec spec;
  spec.vdtu_program = VDTU_PATH;
  spec.kernel_program = VDTU_SEMPER_KERNEL_PATH;
  spec.quiet = true;
  spec.timeout_seconds = 60;
  spec.nodes = {{{ClusterKernel{{{VDTU_KERNEL_TEST_VPE_PATH, "spanning-revoker", "holder"}}}}},
                {{ClusterKernel{{{VDTU_KERNEL_TEST_VPE_PATH, "doomed-holder", "holder"}}}}}};
  const auto result = run_cluster(spec);
  std::string all;
  for (const auto& f : result.failures) all += f + "\n";
  ASSERT_EQ(result.failures.size(), 1U) << (all.empty() ? "node 1 was not killed" : all);
  EXPECT_EQ(result.failures[0].rfind("node 1 failed", 0), 0U) << result.failures[0];
  // The killed node's log ends where it was killed: no "finished cleanly".
}

}  // namespace
}  // namespace vdtu::cluster
