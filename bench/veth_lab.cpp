#include "veth_lab.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <system_error>
#include <vector>

#include "cluster/child_process.hpp"

namespace vdtu::bench {
namespace {

int exit_code(const std::vector<std::string>& words, bool quiet) {
  cluster::ChildOptions options;
  if (quiet) {
    options.open(1, "/dev/null", O_WRONLY);
    options.open(2, "/dev/null", O_WRONLY);
  }
  const int status = cluster::ChildProcess(words, options).wait();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void run(const std::vector<std::string>& words) {
  if (exit_code(words, false) != 0)
    throw std::runtime_error(fmt::format("`{}` failed", fmt::join(words, " ")));
}

}  // namespace

VethLab::VethLab() {
  const auto tag = std::to_string(::getpid() % 1'000'000);
  bridge_ = "vb" + tag + "br";
  try {
    for (int n = 0; n < 2; ++n) {
      namespaces_[n] = fmt::format("vdtu-bench-{}-{}", tag, n);
      host_ends_[n] = fmt::format("vb{}h{}", tag, n);
      const auto inside = fmt::format("vb{}i{}", tag, n);
      run({"ip", "netns", "add", namespaces_[n]});
      run({"ip", "link", "add", host_ends_[n], "type", "veth", "peer", "name", inside});
      run({"ip", "link", "set", inside, "netns", namespaces_[n]});
      run({"ip", "-n", namespaces_[n], "link", "set", inside, "name", "eth0"});
      run({"ip", "-n", namespaces_[n], "link", "set", "eth0", "up"});
      run({"ip", "link", "set", host_ends_[n], "up"});
    }
  } catch (...) {
    tear_down();
    throw;
  }
}

VethLab::~VethLab() { tear_down(); }

void VethLab::bridge(bool joined) {
  if (joined == bridged_) return;
  if (joined) {
    run({"ip", "link", "add", bridge_, "type", "bridge"});
    bridged_ = true;
    for (const auto& end : host_ends_) run({"ip", "link", "set", end, "master", bridge_});
    run({"ip", "link", "set", bridge_, "up"});
  } else {
    run({"ip", "link", "del", bridge_});
    bridged_ = false;
  }
}

// Every step on its own, so one that fails does not leave the rest behind.
void VethLab::tear_down() noexcept {
  auto quietly = [](const std::vector<std::string>& words) {
    try {
      exit_code(words, true);
    } catch (...) {  // nothing more to do
    }
  };
  if (bridged_) quietly({"ip", "link", "del", bridge_});
  for (const auto& end : host_ends_) {
    if (!end.empty()) quietly({"ip", "link", "del", end});  // takes the namespace's end along
  }
  for (const auto& ns : namespaces_) {
    if (!ns.empty()) quietly({"ip", "netns", "del", ns});
  }
}

InNamespace::InNamespace(const std::string& name) {
  home_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  const int target = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  const bool ok = home_ >= 0 && target >= 0 && ::setns(target, CLONE_NEWNET) == 0;
  if (target >= 0) ::close(target);
  if (!ok) {
    if (home_ >= 0) ::close(home_);
    throw std::system_error(errno, std::generic_category(), "enter network namespace " + name);
  }
}

InNamespace::~InNamespace() {
  ::setns(home_, CLONE_NEWNET);
  ::close(home_);
}

}  // namespace vdtu::bench
