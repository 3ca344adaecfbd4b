#pragma once

#include <string>
#include <vector>

#include "cluster/cluster_launch.hpp"

namespace vdtu::cli {

using cluster::ClusterKernel;
using cluster::ClusterNode;
using cluster::ClusterResult;
using cluster::ClusterSpec;
using cluster::run_cluster;

struct ClusterOptions {
  std::string config_path;  // TOML; empty: from the flags below
  unsigned nodes = 2;
  unsigned kernels_per_node = 1;
  double timeout_seconds = 120;
  bool netns = false;
  bool encrypt = false;
  double loss = 0;  // fault injection on every bridge (probabilities)
  double duplicate = 0;
  double reorder = 0;
};

// The default workload: kernel 0 serves "echo"; a client on every other
// kernel opens a session, obtains a gate, pings, delegates a gate back and
// revokes.
ClusterSpec echo_cluster(unsigned nodes, unsigned kernels_per_node);
ClusterSpec parse_cluster(const std::string& path);

// `vdtu cluster`: returns the process exit code.
int run_cluster_command(const ClusterOptions& options);

}  // namespace vdtu::cli
