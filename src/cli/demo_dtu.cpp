// The vDTU part of the demo: a node in this process and PEs from the
// dtu_test_pe program built next to this executable, in the same roles the
// integration tests use.
#include <unistd.h>
#include <csignal>

#include <stdexcept>
#include <thread>

#include "common/sibling_program.hpp"
#include "demo.hpp"
#include "node/node.hpp"

namespace vdtu::cli {
namespace {

using namespace std::chrono_literals;

std::string test_pe_path() { return sibling_program("dtu_test_pe"); }

// Launches the roles in order (PE ids 0, 1, ...) and expects every one to pass.
bool roles_pass(const std::vector<std::pair<std::vector<std::string>, bool>>& roles) {
  dtu::Node node(dtu::NodeConfig{});
  const auto program = test_pe_path();
  std::vector<PeId> pes;
  pes.reserve(roles.size());
  for (const auto& [args, privileged] : roles) pes.push_back(node.launch({program, args, privileged}));
  if (!node.wait_all_exited(60s)) return false;
  for (PeId pe : pes) {
    if (node.exit_code(pe) != 0) return false;
  }
  return true;
}

bool check_kill() {
  dtu::Node node(dtu::NodeConfig{});
  const auto program = test_pe_path();
  node.launch({program, {"echo-server"}, false});
  const PeId victim = node.launch({program, {"echo-client", "1000"}, false});
  const PeId survivor = node.launch({program, {"echo-client", "1.0"}, false});
  node.launch({program, {"configure-echo", "0", "1", "2"}, true});
  std::this_thread::sleep_for(300ms);
  ::kill(node.pid_of(victim), SIGKILL);
  for (int i = 0; i < 300 && !node.exit_code(survivor); ++i) std::this_thread::sleep_for(10ms);
  return node.exit_code(victim) == 128 + SIGKILL && node.exit_code(survivor) == 0;
}

}  // namespace

std::vector<DemoCheck> dtu_checks() {
  return {
      {"dtu: send, fetch, reply with labels and credits between PE processes",
       [] {
         return roles_pass({{{"sender", "1"}, false},
                            {{"receiver", "0"}, false},
                            {{"configure-messaging", "0", "1"}, true}});
       }},
      {"dtu: an unprivileged PE is refused every control operation",
       [] {
         return roles_pass({{{"unprivileged"}, false}});
       }},
      {"dtu: memory endpoints enforce window and permissions in the node",
       [] {
         return roles_pass(
             {{{"memory-user"}, false}, {{"memory-owner"}, false}, {{"configure-memory", "0", "1"}, true}});
       }},
      {"dtu: receivers see the configured label and sender, not forged header bytes",
       [] {
         return roles_pass({{{"forger"}, false},
                            {{"forgery-victim", "0"}, false},
                            {{"configure-forgery", "0", "1"}, true}});
       }},
      {"dtu: kill -9 of a PE mid-conversation; the node cleans up, others go on", check_kill},
  };
}

}  // namespace vdtu::cli
