// The kernel part of the demo: a node, VPEs from kernel_test_vpe in the roles
// of the integration tests, and semper_kernel as the privileged PE.
#include <fmt/format.h>
#include <csignal>

#include <thread>

#include "common/sibling_program.hpp"
#include "demo.hpp"
#include "node/node.hpp"

namespace vdtu::cli {
namespace {

using namespace std::chrono_literals;
using Roles = std::vector<std::vector<std::string>>;

// VPE i runs roles[i] on PE i; each (a, b) in `peers` hold each other's VPE
// capability at selector 10. `during` may act on the running node.
bool scenario(const Roles& roles, const std::vector<std::pair<PeId, PeId>>& peers = {},
              const std::function<void(dtu::Node&)>& during = {}) {
  dtu::Node node(dtu::NodeConfig{});
  const auto vpe_program = sibling_program("kernel_test_vpe");
  std::vector<PeId> vpes;
  for (const auto& args : roles) vpes.push_back(node.launch({vpe_program, args, false}));
  std::vector<std::string> kernel_args{"--vpes", fmt::format("{}", fmt::join(vpes, ","))};
  for (auto [a, b] : peers) {
    kernel_args.insert(kernel_args.end(),
                       {"--grant", fmt::format("{}:{}:10", a, b), "--grant", fmt::format("{}:{}:10", b, a)});
  }
  const PeId kernel = node.launch({sibling_program("semper_kernel"), kernel_args, true});
  if (during) during(node);
  if (!node.wait_all_exited(60s)) return false;
  bool ok = node.exit_code(kernel) == 0;
  for (PeId pe : vpes) ok = ok && (node.exit_code(pe) == 0 || node.exit_code(pe) == 128 + SIGKILL);
  return ok && node.exit_code(vpes.front()) == 0;
}

}  // namespace

std::vector<DemoCheck> kernel_checks() {
  return {
      {"kernel: NOOP, CREATEGATE, REVOKE (also of nothing), a chain of 10, malformed requests",
       [] { return scenario({{"basics"}}); }},
      {"kernel: memory capabilities derived and accessed, revoked with their endpoints",
       [] { return scenario({{"memory"}}); }},
      {"kernel: a tree of 1000 children revoked at the root",
       [] {
         return scenario({{"wide-tree", "1000"}});
       }},
      {"kernel: EXCHANGE delegate and obtain between VPEs, REVOKE cascading into the other",
       [] {
         return scenario({{"exchange-a"}, {"exchange-b"}}, {{0, 1}});
       }},
      {"kernel: sessions with a server VPE: OBTAIN and DELEGATE over the session",
       [] {
         return scenario({{"server", "4"}, {"client"}});
       }},
      {"kernel: CREATEVPE (the node logs the refused missing program), delegate, VPECTRL start and wait",
       [] { return scenario({{"parent"}}); }},
      {"kernel: a VPE killed while holding delegated capabilities loses them, and its peer its copies",
       [] {
         return scenario({{"victim-holder"}, {"doomed"}}, {{0, 1}}, [](dtu::Node& node) {
           std::this_thread::sleep_for(500ms);
           ::kill(node.pid_of(1), SIGKILL);
         });
       }},
  };
}

}  // namespace vdtu::cli
