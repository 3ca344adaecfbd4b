#include "network_namespaces.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <spawn.h>
#include <sys/wait.h>

#include <stdexcept>
#include <system_error>

namespace vdtu::cluster {
namespace {

// Spawns with stdout and stderr kept, or sent to /dev/null for teardown.
int spawn_and_wait(const std::vector<std::string>& words, bool silent) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (silent) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  std::vector<std::string> copy = words;
  std::vector<char*> argv;
  argv.reserve(copy.size() + 1);
  for (auto& w : copy) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -rc;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

void run_command(const std::vector<std::string>& words) {
  const int rc = spawn_and_wait(words, false);
  if (rc < 0) {
    throw std::runtime_error(fmt::format("cannot run {}: {}", words.at(0),
                                         std::error_code(-rc, std::generic_category()).message()));
  }
  if (rc != 0) throw std::runtime_error(fmt::format("`{}` failed (exit {})", fmt::join(words, " "), rc));
}

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
  for (const auto& ns : names_) spawn_and_wait({"ip", "netns", "del", ns}, true);
  names_.clear();
  spawn_and_wait({"ip", "link", "del", bridge_}, true);
}

}  // namespace vdtu::cluster
