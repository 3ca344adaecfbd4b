// Whole clusters of `vdtu node` processes whose VPEs end in the middle of
// spanning revocations. The checks of defined results run in the VPEs
// (kernel_test_vpe spanning-revoker, doomed-holder); a node fails if any of
// its PEs fails or hangs.
#include <gtest/gtest.h>

#include <string>

#include "cluster/cluster_launch.hpp"

namespace vdtu::cluster {
namespace {

// A revoker on node 0 and a holder on node 1 build a 200-link chain that
// alternates between their kernels; `how` says what ends it.
ClusterResult run_chain(const std::string& how) {
  ClusterSpec spec;
  spec.vdtu_program = VDTU_PATH;
  spec.kernel_program = VDTU_SEMPER_KERNEL_PATH;
  spec.quiet = true;
  spec.timeout_seconds = 60;
  spec.nodes = {{{ClusterKernel{{{VDTU_KERNEL_TEST_VPE_PATH, "spanning-revoker", "holder", how}}}}},
                {{ClusterKernel{{{VDTU_KERNEL_TEST_VPE_PATH, "doomed-holder", "holder", how}}}}}};
  // The doomed holder kills its own node: only possible without the sandbox.
  if (how == "kill") spec.nodes[1].sandbox = "none";
  return run_cluster(spec);
}

std::string all_of(const ClusterResult& result) {
  std::string all;
  for (const auto& f : result.failures) all += f + "\n";
  return all;
}

// The holder kills its node 2 ms after the revoker starts revoking the
// chain: the revoke completes (the dead kernel's part went with it), what
// depended on the dead kernel fails with clear errors, node 0 ends cleanly.
TEST(ClusterNodes, ANodeKilledDuringASpanningRevocationLeavesTheOtherWithDefinedResults) {
  const auto result = run_chain("kill");
  ASSERT_EQ(result.failures.size(), 1U)
      << (result.failures.empty() ? "node 1 was not killed" : all_of(result));
  EXPECT_EQ(result.failures[0].rfind("node 1 failed", 0), 0U) << result.failures[0];
}

// Both VPEs exit at once: each kernel revokes its ends of every link, each
// revocation reaching links the other one holds. Both must finish (they
// once waited for each other in a circle) and both nodes end cleanly.
TEST(ClusterNodes, BothEndsOfAChainExitingAtOnceEndCleanly) {
  const auto result = run_chain("exit");
  EXPECT_TRUE(result.failures.empty()) << all_of(result);
}

// Sessions with memory across nodes: the client on node 1 obtains memory of
// the server's (node 0's) memory and writes it through a memory endpoint;
// it delegates its own memory, which the server reads. The checks run in
// kernel_test_vpe's server and client roles.
TEST(ClusterNodes, MemoryCapabilitiesWorkAcrossNodes) {
  ClusterSpec spec;
  spec.vdtu_program = VDTU_PATH;
  spec.kernel_program = VDTU_SEMPER_KERNEL_PATH;
  spec.quiet = true;
  spec.timeout_seconds = 60;
  spec.nodes = {{{ClusterKernel{{{VDTU_KERNEL_TEST_VPE_PATH, "server", "4"}}}}},
                {{ClusterKernel{{{VDTU_KERNEL_TEST_VPE_PATH, "client"}}}}}};
  const auto result = run_cluster(spec);
  EXPECT_TRUE(result.failures.empty()) << all_of(result);
}

ClusterSpec spec_of(std::vector<ClusterNode> nodes, double timeout_seconds = 60) {
  ClusterSpec spec;
  spec.vdtu_program = VDTU_PATH;
  spec.kernel_program = VDTU_SEMPER_KERNEL_PATH;
  spec.quiet = true;
  spec.timeout_seconds = timeout_seconds;
  spec.nodes = std::move(nodes);
  return spec;
}

ClusterKernel with(std::vector<std::string> vpe) {
  vpe.insert(vpe.begin(), VDTU_KERNEL_TEST_VPE_PATH);
  return ClusterKernel{{std::move(vpe)}};
}

// Eight kernels on one node connect to each other while the node is still
// starting the later ones: a kernel whose peer's PE does not run yet waits
// for it (it gave up about one start in ten).
TEST(ClusterNodes, EightKernelsOnOneNodeStartReliably) {
  ClusterNode node;
  node.kernels.push_back(with({"gate-server", "echo"}));
  for (int k = 1; k < 8; ++k) node.kernels.push_back(with({"gate-client", "echo"}));
  for (int run = 0; run < 20; ++run) {
    const auto result = run_cluster(spec_of({node}));
    ASSERT_TRUE(result.failures.empty()) << "run " << run << ": " << all_of(result);
  }
}

// A cluster whose only VPEs are servers ends: the kernels shut the services
// down, as nobody is left to call them. One kernel; two on one node (one of
// them without VPEs); two on two nodes.
TEST(ClusterNodes, ClustersOfServersAloneEnd) {
  const std::vector<std::vector<ClusterNode>> clusters{
      {{{with({"gate-server", "east"})}}},
      {{{with({"gate-server", "east"}), ClusterKernel{}}}},
      {{{with({"gate-server", "east"})}}, {{with({"gate-server", "west"})}}},
  };
  for (std::size_t c = 0; c < clusters.size(); ++c) {
    const auto result = run_cluster(spec_of(clusters[c], 30));
    EXPECT_TRUE(result.failures.empty()) << "cluster " << c << ": " << all_of(result);
  }
}

}  // namespace
}  // namespace vdtu::cluster
