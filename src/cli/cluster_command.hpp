#pragma once

#include <string>
#include <vector>

namespace vdtu::cli {

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
  bool quiet = false;          // keep the nodes' output to failures
};

struct ClusterOptions {
  std::string config_path;  // TOML; empty: from the flags below
  unsigned nodes = 2;
  unsigned kernels_per_node = 1;
  double timeout_seconds = 120;
};

// The default workload: kernel 0 serves "echo"; a client on every other
// kernel opens a session, obtains a gate, pings, delegates a gate back and
// revokes.
ClusterSpec echo_cluster(unsigned nodes, unsigned kernels_per_node);
ClusterSpec parse_cluster(const std::string& path);

struct ClusterResult {
  int nodes_failed = 0;
  std::vector<std::string> failures;  // "node N: ..." lines
};

// Starts one `vdtu node` process per node (loopback UDP between them) and
// waits for all of them.
ClusterResult run_cluster(const ClusterSpec& spec);

// `vdtu cluster`: returns the process exit code.
int run_cluster_command(const ClusterOptions& options);

}  // namespace vdtu::cli
