#pragma once
// Starting a cluster: one `vdtu node` process per node, each with a generated
// configuration (global PE range, kernels with their membership table, the
// bridge's UDP address and its peers), joined over loopback UDP or, with
// `netns`, each node in a network namespace of its own.

#include <cstdint>
#include <string>
#include <vector>

namespace vdtu::cluster {

// One kernel and the VPE programs (program, then arguments) of its partition.
struct ClusterKernel {
  std::vector<std::vector<std::string>> vpes;
};

struct ClusterNode {
  std::vector<ClusterKernel> kernels;
};

struct ClusterSpec {
  std::vector<ClusterNode> nodes;
  std::uint32_t pes_per_node = 16;
  std::uint32_t endpoints_per_pe = 16;
  double timeout_seconds = 120;
  std::string kernel_program;  // empty: apps/semper_kernel next to vdtu
  std::string vdtu_program;    // runs the nodes; empty: this executable
  bool quiet = false;          // keep the nodes' output to failures
  bool netns = false;          // each node in its own network namespace (needs root)
  bool encrypt = false;        // seal every bridge datagram with a fresh random cluster key
  // Injected by every node's bridge on its outgoing datagrams (probabilities).
  double loss = 0;
  double duplicate = 0;
  double reorder = 0;
};

struct ClusterResult {
  int nodes_failed = 0;
  std::vector<std::string> failures;  // "node N: ..." lines
};

// Starts the nodes (`vdtu` is the executable that runs this) and waits for
// all of them; cleans up its files and namespaces.
ClusterResult run_cluster(const ClusterSpec& spec);

}  // namespace vdtu::cluster
