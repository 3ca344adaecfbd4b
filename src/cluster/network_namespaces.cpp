#include "network_namespaces.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <system_error>

#include "child_process.hpp"

namespace vdtu::cluster {
namespace {

// `ip` runs in a group of its own, so that a Ctrl-C meant for us does not
// end it halfway; we finish or undo its work ourselves.
ChildOptions ip_options(bool quiet) {
  ChildOptions o;
  o.own_process_group = true;
  o.open(0, "/dev/null", O_RDONLY);
  if (quiet) {
    o.open(1, "/dev/null", O_WRONLY);
    o.open(2, "/dev/null", O_WRONLY);
  }
  return o;
}

// Teardown: quietly, whatever happens; false if the command failed.
bool run_quietly(const std::vector<std::string>& words) noexcept {
  try {
    return ChildProcess(words, ip_options(true)).wait() == 0;
  } catch (...) {  // cannot even start it: reported as not removed
    return false;
  }
}

// Throws with the command and how it ended when it fails.
void run_command(const std::vector<std::string>& words) {
  const int status = ChildProcess(words, ip_options(false)).wait();
  if (status != 0)
    throw std::runtime_error(fmt::format("`{}` failed ({})", fmt::join(words, " "), describe_status(status)));
}

}  // namespace

NetworkNamespaces::NetworkNamespaces(const std::string& tag, unsigned count) : bridge_("vdtu" + tag) {
  if (bridge_.size() + 1 + std::to_string(count).size() > 15)
    throw std::runtime_error("network namespace tag too long for interface names");
  try {
    run_command({"ip", "link", "add", bridge_, "type", "bridge"});
    bridge_made_ = true;
    run_command({"ip", "link", "set", bridge_, "up"});
    for (unsigned n = 0; n < count; ++n) {
      const auto ns = fmt::format("vdtu-{}-{}", tag, n);
      const auto host_end = fmt::format("{}n{}", bridge_, n);
      const auto ns_end = fmt::format("{}p{}", bridge_, n);
      run_command({"ip", "netns", "add", ns});
      names_.push_back(ns);
      addresses_.push_back(fmt::format("10.77.{}.{}", n / 250, n % 250 + 1));
      run_command({"ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end});
      veths_.push_back(host_end);
      run_command({"ip", "link", "set", ns_end, "netns", ns});
      run_command({"ip", "link", "set", host_end, "master", bridge_});
      run_command({"ip", "link", "set", host_end, "up"});
      run_command({"ip", "-n", ns, "link", "set", ns_end, "name", "eth0"});
      run_command({"ip", "-n", ns, "addr", "add", addresses_.back() + "/16", "dev", "eth0"});
      run_command({"ip", "-n", ns, "link", "set", "eth0", "up"});
      run_command({"ip", "-n", ns, "link", "set", "lo", "up"});
    }
  } catch (...) {
    remove();
    throw;
  }
}

NetworkNamespaces::~NetworkNamespaces() { remove(); }

std::vector<std::string> NetworkNamespaces::exec_prefix(unsigned n) const {
  return {"ip", "netns", "exec", name(n)};
}

std::vector<std::string> NetworkNamespaces::remove() noexcept {
  std::vector<std::string> left;
  try {
    // A namespace goes away in the background after `ip netns del`, and its
    // veth ends with it; deleting our end first takes the pair at once.
    for (const auto& veth : veths_) {
      if (!run_quietly({"ip", "link", "del", veth})) left.push_back("veth " + veth);
    }
    veths_.clear();
    for (const auto& ns : names_) {
      if (!run_quietly({"ip", "netns", "del", ns})) left.push_back("network namespace " + ns);
    }
    names_.clear();
    if (bridge_made_ && !run_quietly({"ip", "link", "del", bridge_})) left.push_back("bridge " + bridge_);
    bridge_made_ = false;
  } catch (...) {  // out of memory for the names: nothing more to do about it
  }
  return left;
}

}  // namespace vdtu::cluster
