#pragma once
// Starting a cluster: one `vdtu node` process per node, each with a generated
// configuration (global PE range, kernels with their membership table, the
// bridge's UDP address, its peers and the cluster key), joined over loopback
// UDP or, with `netns`, each node in a network namespace of its own; then
// supervising them until they end, the timeout passes or a stop signal comes.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace vdtu::cluster {

// One kernel and the VPE programs (program, then arguments) of its partition.
struct ClusterKernel {
  std::vector<std::vector<std::string>> vpes;
};

struct ClusterNode {
  ClusterNode(std::vector<ClusterKernel> k = {}) : kernels(std::move(k)) {}  // NOLINT: from {kernels...}
  std::vector<ClusterKernel> kernels;
  // The node's PE sandbox ("uid", "userns", "none"); empty: the node's
  // default. "none" only for a test PE that must reach its own node (one
  // that kills it on purpose): it is insecure.
  std::string sandbox;
};

inline constexpr std::size_t kMaxNodes = 64;
inline constexpr double kDefaultTimeoutSeconds = 120;
inline constexpr double kMaxTimeoutSeconds = 7 * 24 * 3600;
// A kernel receives syscalls, service answers and kernelcalls on endpoints
// 0-2 and sends to the i-th kernel of the cluster on endpoint 3 + i.
inline constexpr std::uint32_t kKernelEndpointsBeforePeers = 3;
// Endpoints a kernel keeps for the services of its VPEs, after its peers'.
inline constexpr std::uint32_t kKernelServiceEndpoints = 16;
// The most kernels in a cluster: each has a send endpoint (and a channel)
// to every other, ~n^2 channels in all; 64 is what the tests start
// (tests/integration/scale_test.cpp) and what `vdtu bench scale` measures.
inline constexpr std::size_t kMaxKernels = 64;
// Endpoints of a privileged PE (a kernel) in a cluster of `kernels`: only
// kernels get them (the nodes' privileged_endpoints), VPEs keep endpoints_per_pe.
inline std::uint32_t kernel_endpoints(std::size_t kernels, std::uint32_t endpoints_per_pe) {
  return std::max<std::uint32_t>(
      endpoints_per_pe,
      kKernelEndpointsBeforePeers + static_cast<std::uint32_t>(kernels) + kKernelServiceEndpoints);
}
// `vdtu node` exits with this when its timeout came while PEs still ran (as
// timeout(1) does); it names them in its output.
inline constexpr int kNodeTimedOutExit = 124;

struct ClusterSpec {
  std::vector<ClusterNode> nodes;
  std::uint32_t pes_per_node = 16;
  std::uint32_t endpoints_per_pe = 16;
  // The nodes kill PEs still running after this long and fail (and so the
  // cluster); a node that outlives it by far is killed with its PEs.
  double timeout_seconds = kDefaultTimeoutSeconds;
  std::string kernel_program;  // empty: semper_kernel found next to vdtu (sibling_program)
  std::string vdtu_program;    // runs the nodes; empty: this executable
  bool quiet = false;          // keep the nodes' output to failures
  // On a terminal: a line saying how many nodes still run, for how long yet;
  // the nodes' output then passes through this process (see OutputRelay).
  bool progress = false;
  bool netns = false;  // each node in its own network namespace (needs root)
  // Bridge datagrams are sealed with a fresh random cluster key unless this
  // says otherwise; plain datagrams let any host that reaches a node's port
  // act as a node.
  bool insecure_plain = false;
  // Injected by every node's bridge on its outgoing datagrams (probabilities).
  double loss = 0;
  double duplicate = 0;
  double reorder = 0;
};

struct ClusterResult {
  int nodes_failed = 0;
  std::vector<std::string> failures;  // "node N failed...", in quiet mode with the node's output
};

// Throws std::runtime_error naming the first thing `spec` asks for that a
// cluster cannot do (too many PEs for a node, too few endpoints for the
// kernels, PE ids beyond 16 bits, ...).
void check(const ClusterSpec& spec);

// Starts the nodes (`vdtu` is the executable that runs this) and waits for
// all of them; removes its files and namespaces. A stop signal (SIGINT,
// SIGTERM, SIGHUP) arriving meanwhile stops the nodes (which kill and reap
// their PEs), removes everything and throws vdtu::StoppedBySignal saying
// what was stopped and removed. Blocks the stop signals while it runs (see
// StopSignals); call it before starting threads of your own.
ClusterResult run_cluster(const ClusterSpec& spec);

}  // namespace vdtu::cluster
