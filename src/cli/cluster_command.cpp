// `vdtu cluster`: N nodes as N `vdtu node` processes joined by their bridges
// on loopback or in network namespaces. The cluster file (or the flags) name
// kernels and their VPEs; src/cluster assigns the global PE ranges, the
// kernels' membership table, the UDP ports, the cluster key and each node's
// configuration file.
#include "cluster_command.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "cluster_file.hpp"
#include "common/sibling_program.hpp"
#include "vm/guest_cluster.hpp"

namespace vdtu::cli {
namespace {

// A VPE's endpoints (kernels get theirs from cluster::kernel_endpoints).
constexpr unsigned kVpeEndpoints = 16;

}  // namespace

ClusterSpec echo_cluster(unsigned nodes, unsigned kernels_per_node) {
  const unsigned kernels = nodes * kernels_per_node;
  if (nodes == 0 || kernels_per_node == 0 || kernels < 2)
    throw std::runtime_error("a cluster needs at least two kernels");
  if (kernels > cluster::kMaxKernels) {
    throw std::runtime_error(fmt::format(
        "{} nodes x {} kernels = {} kernels: a cluster has at most {} (each kernel has an endpoint and a "
        "channel to every other)",
        nodes, kernels_per_node, kernels, cluster::kMaxKernels));
  }
  const auto vpe = sibling_program("kernel_test_vpe");
  ClusterSpec spec;
  spec.endpoints_per_pe = kVpeEndpoints;
  spec.nodes.resize(nodes);
  for (unsigned n = 0; n < nodes; ++n) {
    for (unsigned k = 0; k < kernels_per_node; ++k) {
      ClusterKernel kernel;
      const bool first = n == 0 && k == 0;
      kernel.vpes.push_back({vpe, first ? "gate-server" : "gate-client", "echo"});
      spec.nodes[n].kernels.push_back(std::move(kernel));
    }
  }
  return spec;
}

int run_cluster_command(const ClusterOptions& options) {
  auto spec = options.config_path.empty() ? echo_cluster(options.nodes, options.kernels_per_node)
                                          : parse_cluster_file(options.config_path);
  if (options.timeout_seconds) spec.timeout_seconds = *options.timeout_seconds;
  spec.netns = spec.netns || options.netns;
  spec.insecure_plain = spec.insecure_plain || options.insecure_plain;
  if (options.loss) spec.loss = *options.loss;
  if (options.duplicate) spec.duplicate = *options.duplicate;
  if (options.reorder) spec.reorder = *options.reorder;
  spec.progress = true;  // shown only on a terminal
  cluster::check(spec);
  unsigned kernels = 0;
  for (const auto& n : spec.nodes) kernels += static_cast<unsigned>(n.kernels.size());
  const bool in_guests = options.vms || options.vms_udp;
  const char* where = options.vms       ? "a QEMU guest per node on vhost-user ports of a vdtu switch"
                      : options.vms_udp ? "a QEMU guest per node, joined by loopback UDP"
                      : spec.netns      ? "a network namespace per node (veth + bridge)"
                                        : "loopback UDP";
  fmt::print("cluster: {} nodes, {} kernels, {}, {}, timeout {} s\n", spec.nodes.size(), kernels, where,
             spec.insecure_plain
                 ? "PLAIN datagrams (insecure: any host reaching a node's port can act as a node)"
                 : "datagrams sealed with a fresh random cluster key",
             spec.timeout_seconds);
  (void)std::fflush(stdout);
  vm::GuestClusterOptions guests;
  guests.link = options.vms ? vm::GuestLink::vhost_user_switch : vm::GuestLink::udp_pair;
  guests.echo_consoles = true;
  const auto result = in_guests ? vm::run_cluster_in_guests(spec, guests) : run_cluster(spec);
  for (const auto& f : result.failures) fmt::print("cluster: {}\n", f);
  fmt::print("cluster: {} of {} nodes finished cleanly\n", spec.nodes.size() - result.nodes_failed,
             spec.nodes.size());
  return result.nodes_failed == 0 ? 0 : 1;
}

}  // namespace vdtu::cli
