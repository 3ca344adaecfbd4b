#pragma once

#include <optional>
#include <string>

#include "cluster/cluster_launch.hpp"

namespace vdtu::cli {

using cluster::ClusterKernel;
using cluster::ClusterNode;
using cluster::ClusterResult;
using cluster::ClusterSpec;
using cluster::run_cluster;

struct ClusterOptions {
  std::string config_path;  // TOML; empty: the echo workload from the flags below
  unsigned nodes = 2;
  unsigned kernels_per_node = 1;
  std::optional<double> timeout_seconds;  // overrides the file's; default 120
  bool netns = false;
  bool vms = false;             // each node in a QEMU guest on a vhost-user switch port
  bool vms_udp = false;         // each of two nodes in a QEMU guest, joined by loopback UDP
  bool insecure_plain = false;  // plain datagrams instead of sealed ones
  // Injected on every bridge (probabilities); given ones override the file's.
  std::optional<double> loss;
  std::optional<double> duplicate;
  std::optional<double> reorder;
};

// The default workload: kernel 0 serves "echo"; a client on every other
// kernel opens a session, obtains a gate, pings, delegates a gate back and
// revokes.
ClusterSpec echo_cluster(unsigned nodes, unsigned kernels_per_node);

// `vdtu cluster`: returns the process exit code; throws StoppedBySignal.
int run_cluster_command(const ClusterOptions& options);

}  // namespace vdtu::cli
