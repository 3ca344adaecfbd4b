#include "network_namespaces.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <sys/wait.h>

#include <stdexcept>
#include <system_error>

#include "child_process.hpp"

namespace vdtu::cluster {
namespace {

// Runs a command to its end; its exit code (128 + signal if killed). Throws
// std::system_error if it cannot be started.
int exit_code_of(const std::vector<std::string>& words, const SpawnActions& actions) {
  const int status = wait_for(spawn(words, actions));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Teardown: quietly, and whatever happens.
void run_quietly(const std::vector<std::string>& words) noexcept {
  try {
    SpawnActions quiet;
    quiet.open(1, "/dev/null", O_WRONLY);
    quiet.open(2, "/dev/null", O_WRONLY);
    exit_code_of(words, quiet);
  } catch (...) {  // nothing more to do about it
  }
}

// Throws with the command and its exit code when it fails.
void run_command(const std::vector<std::string>& words) {
  const int rc = exit_code_of(words, SpawnActions{});
  if (rc != 0) throw std::runtime_error(fmt::format("`{}` failed (exit {})", fmt::join(words, " "), rc));
}

}  // namespace

NetworkNamespaces::NetworkNamespaces(const std::string& tag, unsigned count) : bridge_("vdtu" + tag) {
  if (bridge_.size() + 1 + std::to_string(count).size() > 15)
    throw std::runtime_error("network namespace tag too long for interface names");
  try {
    run_command({"ip", "link", "add", bridge_, "type", "bridge"});
    run_command({"ip", "link", "set", bridge_, "up"});
    for (unsigned n = 0; n < count; ++n) {
      const auto ns = fmt::format("vdtu-{}-{}", tag, n);
      const auto host_end = fmt::format("{}n{}", bridge_, n);
      const auto ns_end = fmt::format("{}p{}", bridge_, n);
      run_command({"ip", "netns", "add", ns});
      names_.push_back(ns);
      addresses_.push_back(fmt::format("10.77.{}.{}", n / 250, n % 250 + 1));
      run_command({"ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end});
      run_command({"ip", "link", "set", ns_end, "netns", ns});
      run_command({"ip", "link", "set", host_end, "master", bridge_});
      run_command({"ip", "link", "set", host_end, "up"});
      run_command({"ip", "-n", ns, "link", "set", ns_end, "name", "eth0"});
      run_command({"ip", "-n", ns, "addr", "add", addresses_.back() + "/16", "dev", "eth0"});
      run_command({"ip", "-n", ns, "link", "set", "eth0", "up"});
      run_command({"ip", "-n", ns, "link", "set", "lo", "up"});
    }
  } catch (...) {
    tear_down();
    throw;
  }
}

NetworkNamespaces::~NetworkNamespaces() { tear_down(); }

std::vector<std::string> NetworkNamespaces::exec_prefix(unsigned n) const {
  return {"ip", "netns", "exec", name(n)};
}

void NetworkNamespaces::tear_down() noexcept {
  // Deleting a namespace destroys its veth end and with it the host end.
  for (const auto& ns : names_) run_quietly({"ip", "netns", "del", ns});
  names_.clear();
  run_quietly({"ip", "link", "del", bridge_});
}

}  // namespace vdtu::cluster
