// Demo checks for several kernels and two nodes, each node a `vdtu node`
// process, the nodes joined by their bridges over loopback UDP.
#include <fmt/core.h>
#include <unistd.h>

#include "cluster_command.hpp"
#include "common/sibling_program.hpp"
#include "demo.hpp"

namespace vdtu::cli {
namespace {

ClusterResult run_quietly(ClusterSpec spec) {
  spec.quiet = true;
  spec.timeout_seconds = 60;
  return run_cluster(spec);
}

bool all_finish(ClusterSpec spec) {
  const auto result = run_quietly(std::move(spec));
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

// Both ways as above, and next to the echo VPEs each node's kernel runs the
// single-kernel scenarios of `vdtu demo` (syscall basics, memory, a wide
// tree) for VPEs of its own partition.
ClusterSpec with_local_tests(ClusterSpec spec) {
  const auto vpe = sibling_program("kernel_test_vpe");
  for (auto& node : spec.nodes) {
    auto& vpes = node.kernels[0].vpes;
    vpes.push_back({vpe, "basics"});
    vpes.push_back({vpe, "memory"});
    vpes.push_back({vpe, "wide-tree", "100"});
  }
  return spec;
}

// The storage server on node 0 hands out memory; the client on node 1
// writes it, and delegates its own memory, which the server reads back.
ClusterSpec memory_across_nodes() {
  const auto vpe = sibling_program("kernel_test_vpe");
  ClusterSpec spec;
  spec.nodes = {{{ClusterKernel{{{vpe, "server", "4"}}}}}, {{ClusterKernel{{{vpe, "client"}}}}}};
  return spec;
}

ClusterSpec plain(ClusterSpec spec) {
  spec.insecure_plain = true;
  return spec;
}

ClusterSpec lossy(ClusterSpec spec) {
  spec.loss = 0.2;
  spec.duplicate = 0.1;
  spec.reorder = 0.1;
  return spec;
}

ClusterSpec in_namespaces(ClusterSpec spec) {
  spec.netns = true;
  return spec;
}

// A 200-link chain alternating between the kernels of two nodes; node 1
// kills itself while node 0 revokes the chain. Node 0's VPE checks the
// results (revoke done, session gone, own kernel working) and node 0 must
// end cleanly; node 1 must be the one that failed.
bool node_killed_during_revocation() {
  const auto vpe = sibling_program("kernel_test_vpe");
  ClusterSpec spec;
  spec.nodes = {{{ClusterKernel{{{vpe, "spanning-revoker", "holder", "kill"}}}}},
                {{ClusterKernel{{{vpe, "doomed-holder", "holder", "kill"}}}}}};
  spec.nodes[1].sandbox = "none";  // the doomed holder kills its own node: only possible unconfined
  const auto result = run_quietly(spec);
  const bool only_node_1 = result.failures.size() == 1 && result.failures[0].rfind("node 1 failed", 0) == 0;
  if (!only_node_1) {
    for (const auto& f : result.failures) fmt::print("  {}\n", f);
  }
  return only_node_1;
}

}  // namespace

std::vector<DemoCheck> cluster_checks() {
  std::vector<DemoCheck> checks{
      {"two kernels on one node: session, obtain, PING/PONG, delegate, revoke",
       [] { return all_finish(echo_cluster(1, 2)); }},
      {"two nodes over UDP, datagrams sealed (ChaCha20-Poly1305, random cluster key): session, obtain, "
       "PING/PONG, "
       "delegate, revoke, both ways; local tests on both",
       [] { return all_finish(with_local_tests(both_ways())); }},
      {"memory across nodes: OBTAIN a server's memory and write it, DELEGATE memory it reads",
       [] { return all_finish(memory_across_nodes()); }},
      {"two nodes with two kernels each: three clients across kernels and nodes",
       [] { return all_finish(echo_cluster(2, 2)); }},
      {"two nodes × two kernels, every bridge losing 20 %, duplicating and reordering 10 % of datagrams",
       [] { return all_finish(lossy(echo_cluster(2, 2))); }},
      {"two nodes with plain datagrams (insecure_plain), as a measurement might run them",
       [] { return all_finish(plain(both_ways())); }},
      {"a node killed during a revocation spanning it: the other finishes with defined results",
       node_killed_during_revocation},
  };
  if (::geteuid() == 0) {
    checks.push_back({"two nodes in their own network namespaces (veth + bridge, own addresses)",
                      [] { return all_finish(in_namespaces(both_ways())); }});
  }
  return checks;
}

}  // namespace vdtu::cli
