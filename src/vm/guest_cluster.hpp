#pragma once
// A cluster whose nodes run in QEMU guests: each guest boots the cached
// image with vdtu, the kernel and the VPE programs in it (at their host
// paths, with their libraries), and runs `vdtu node` with the node file
// `vdtu cluster` would write, the bridge addressing the other guests over
// the guests' virtio-net. The guests meet on `vdtu switch` vhost-user ports
// (a switch this starts), or, for two nodes without a switch, on a pair of
// QEMU UDP sockets.

#include <string>
#include <vector>

#include "cluster/cluster_launch.hpp"
#include "guest_lan.hpp"

namespace vdtu::vm {

struct GuestClusterOptions {
  GuestLink link = GuestLink::vhost_user_switch;
  unsigned memory_mib = 512;
  bool echo_consoles = false;  // every guest's console on our stdout as it comes
  // The PE sandbox the nodes use inside the guests (empty: the node's default).
  std::string sandbox;
};

// Boots one guest per node and waits for all; nodes_failed counts the nodes
// whose `vdtu node` did not exit 0 (or that never reported), each failure
// with its guest's console. spec.timeout_seconds bounds the nodes; booting
// gets its own allowance on top.
cluster::ClusterResult run_cluster_in_guests(const cluster::ClusterSpec& spec,
                                             const GuestClusterOptions& options);

}  // namespace vdtu::vm
