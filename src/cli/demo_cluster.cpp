// Demo checks for several kernels and two nodes, each node a `vdtu node`
// process, the nodes joined by their bridges over loopback UDP.
#include <fmt/core.h>

#include "cluster_command.hpp"
#include "demo.hpp"

namespace vdtu::cli {
namespace {

bool run_quietly(ClusterSpec spec) {
  spec.quiet = true;
  spec.timeout_seconds = 60;
  const auto result = run_cluster(spec);
  for (const auto& f : result.failures) fmt::print("  {}\n", f);
  return result.nodes_failed == 0;
}

// Every kernel's client opens a session to the service of another kernel,
// obtains a gate (PING/PONG), delegates a gate back (the server says hello
// through it) and revokes what it obtained.
ClusterSpec both_ways() {
  auto spec = echo_cluster(2, 1);
  const auto vpe = spec.nodes[0].kernels[0].vpes[0][0];
  spec.nodes[0].kernels[0].vpes = {{vpe, "gate-server", "east"}, {vpe, "gate-client", "west"}};
  spec.nodes[1].kernels[0].vpes = {{vpe, "gate-server", "west"}, {vpe, "gate-client", "east"}};
  return spec;
}

}  // namespace

std::vector<DemoCheck> cluster_checks() {
  return {
      {"two kernels on one node: session, obtain, PING/PONG, delegate, revoke",
       [] { return run_quietly(echo_cluster(1, 2)); }},
      {"two nodes over UDP: session, obtain, PING/PONG, delegate, revoke, both ways",
       [] { return run_quietly(both_ways()); }},
      {"two nodes with two kernels each: three clients across kernels and nodes",
       [] { return run_quietly(echo_cluster(2, 2)); }},
  };
}

}  // namespace vdtu::cli
