#pragma once
// What `vdtu cluster` tells each node: the node file (TOML, as `vdtu node`
// reads it) with the node's PE range, bridge address, peers, cluster key and
// the PE programs, kernels with their membership table included.

#include <cstdint>
#include <string>
#include <vector>

#include "cluster_launch.hpp"

namespace vdtu::cluster {

// On loopback each node inherits its bound socket here: no other program can
// take the port between our choosing it and the node binding it.
inline constexpr int kInheritedSocketFd = 3;

// Where a kernel runs: node n's PE range starts at n * pes_per_node; each
// kernel's VPEs come first, the kernel PE right after them.
struct Placement {
  unsigned kernel = 0;
  unsigned node = 0;
  unsigned first_pe = 0;
  unsigned kernel_pe = 0;  // the last PE of its range
};

struct NodeAddress {
  std::string host;
  std::uint16_t port = 0;
};

std::vector<Placement> place(const ClusterSpec& spec);

struct NodeFileInputs {
  const ClusterSpec& spec;
  const std::vector<Placement>& placements;
  const std::vector<NodeAddress>& addresses;
  bool inherited_sockets = false;  // bridge_fd = kInheritedSocketFd
  std::string kernel_program;
  std::string cluster_key;  // hex; empty: plain datagrams (insecure_plain)
};

std::string node_file(const NodeFileInputs& in, unsigned node);

}  // namespace vdtu::cluster
