// Scale: a node with 1024 PEs (the most a node hosts) and a cluster of 64
// kernels (the most a cluster has) start, run and end cleanly. Real `vdtu
// node` processes, real kernels, real VPE processes; the checks of each
// VPE's work run in kernel_test_vpe (gate-server, gate-client), and a node
// fails if any of its PEs fails or hangs.
#include <gtest/gtest.h>

#include <string>

#include "cluster/cluster_launch.hpp"
#include "protocol/doorbell.hpp"

namespace vdtu::cluster {
namespace {

std::string all_of(const ClusterResult& result) {
  std::string all;
  for (const auto& f : result.failures) all += f + "\n";
  return all;
}

ClusterSpec spec_of(std::vector<ClusterNode> nodes, std::uint32_t pes_per_node) {
  ClusterSpec spec;
  spec.vdtu_program = VDTU_PATH;
  spec.kernel_program = VDTU_SEMPER_KERNEL_PATH;
  spec.quiet = true;
  spec.timeout_seconds = 280;
  spec.pes_per_node = pes_per_node;
  spec.nodes = std::move(nodes);
  return spec;
}

std::vector<std::string> vpe(const char* role) { return {VDTU_KERNEL_TEST_VPE_PATH, role, "echo"}; }

// One kernel, a server and 1022 clients: every client opens a session,
// obtains a gate, pings the server through it (one receive endpoint of the
// server hears 1022 channels), delegates a gate back and revokes. The node
// raises its open-file limit for them (as root; otherwise the hard limit
// must allow it, see README).
TEST(Scale, ANodeOf1024PesStartsRunsAndEnds) {
  constexpr std::uint32_t kPes = dtu::kChannelsPerEndpoint;
  ClusterKernel kernel;
  kernel.vpes.push_back(vpe("gate-server"));
  while (kernel.vpes.size() + 1 < kPes) kernel.vpes.push_back(vpe("gate-client"));
  const auto result = run_cluster(spec_of({ClusterNode{{kernel}}}, kPes));
  EXPECT_TRUE(result.failures.empty()) << all_of(result);
}

// 64 kernels on four nodes (16 each): every kernel has a send endpoint to
// each of the 63 others (the kernels' privileged endpoints), kernelcalls
// cross the bridges, every client VPE works with the server on kernel 0.
TEST(Scale, AClusterOf64KernelsStartsRunsAndEnds) {
  constexpr unsigned kNodes = 4;
  constexpr unsigned kKernelsPerNode = kMaxKernels / kNodes;
  std::vector<ClusterNode> nodes(kNodes);
  for (unsigned n = 0; n < kNodes; ++n) {
    for (unsigned k = 0; k < kKernelsPerNode; ++k) {
      ClusterKernel kernel;
      kernel.vpes.push_back(vpe(n == 0 && k == 0 ? "gate-server" : "gate-client"));
      nodes[n].kernels.push_back(std::move(kernel));
    }
  }
  const auto result = run_cluster(spec_of(std::move(nodes), 2 * kKernelsPerNode));
  EXPECT_TRUE(result.failures.empty()) << all_of(result);
}

// One more kernel than the limit is refused before anything starts.
TEST(Scale, MoreKernelsThanTheLimitAreRefusedClearly) {
  std::vector<ClusterNode> nodes(2);
  for (auto& n : nodes) n.kernels.resize(kMaxKernels / 2 + 1);
  try {
    (void)run_cluster(spec_of(std::move(nodes), 64));
    FAIL() << "a cluster of " << kMaxKernels + 2 << " kernels was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("at most 64 kernels"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vdtu::cluster
