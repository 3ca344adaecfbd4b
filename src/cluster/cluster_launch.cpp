#include "cluster_launch.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include "bridge/cluster_key.hpp"
#include "bridge/udp_socket.hpp"
#include "child_process.hpp"
#include "common/progress_line.hpp"
#include "common/sibling_program.hpp"
#include "common/stop_signals.hpp"
#include "network_namespaces.hpp"
#include "node_files.hpp"
#include "output_relay.hpp"
#include "scratch_directory.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::cluster {
namespace {

using Clock = std::chrono::steady_clock;

// In namespaces every node has its own address and port space.
constexpr std::uint16_t kNamespacePort = 7700;
// A node ends itself at the timeout; this much later we kill it and its PEs.
constexpr auto kTimeoutGrace = std::chrono::seconds(30);
// A node asked to stop kills and reaps its PEs and drains its links (1 s).
constexpr auto kStopGrace = std::chrono::seconds(15);

// Where each node's bridge listens.
struct Addresses {
  std::vector<NodeAddress> nodes;
  std::vector<bridge::UdpSocket> sockets;  // on loopback: bound already, handed to the nodes
};

Addresses loopback_addresses(std::size_t nodes) {
  Addresses at;
  for (std::size_t n = 0; n < nodes; ++n) {
    at.sockets.push_back(bridge::UdpSocket::bind("127.0.0.1", 0));
    at.nodes.push_back({"127.0.0.1", at.sockets.back().port()});
  }
  return at;
}

Addresses namespace_addresses(const NetworkNamespaces& namespaces, std::size_t nodes) {
  Addresses at;
  for (std::size_t n = 0; n < nodes; ++n)
    at.nodes.push_back({namespaces.address(static_cast<unsigned>(n)), kNamespacePort});
  return at;
}

// `words` may start with a prefix that runs the node elsewhere (inside a
// network namespace); `socket` (if >= 0) becomes the node's inherited socket.
ChildProcess start_node(std::vector<std::string> words, const std::string& log, int socket, int output) {
  ChildOptions options;
  options.own_process_group = true;  // its PEs join it: killing the group reaches them all
  options.ends_with_parent = true;
  UniqueFd moved;  // above the target, so that dup2 never maps an fd onto itself
  if (socket >= 0) {
    moved = UniqueFd(::fcntl(socket, F_DUPFD_CLOEXEC, kInheritedSocketFd + 1));
    if (!moved) throw std::runtime_error("cannot pass a socket to a node");
    options.dup2(moved.get(), kInheritedSocketFd);
  }
  options.open(0, "/dev/null", O_RDONLY);  // a node in a background group must not read the terminal
  if (!log.empty()) {
    options.open(1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    options.dup2(1, 2);
  } else if (output >= 0) {
    options.dup2(output, 1);
    options.dup2(1, 2);
  }
  return {std::move(words), options};
}

constexpr std::int64_t kLongestPollMs = 60'000;
constexpr std::int64_t kProgressEveryMs = 500;

void show_progress(ProgressLine& line, std::size_t nodes, std::size_t running, int stop, double timeout) {
  if (!line.enabled()) return;
  line.show(fmt::format("cluster: {} of {} nodes running, {} s of at most {} s{}", running, nodes,
                        line.elapsed().count(), timeout, stop != 0 ? ", stopping" : ""));
}

struct RunningNode {
  ChildProcess process;
  bool asked_to_stop = false;
  bool killed = false;  // did not end in time: killed with its PEs
};

// Waits until every node has ended. A stop signal asks the nodes still
// running to stop (they kill and reap their PEs); a node that has not ended
// by the deadline is killed with its process group. Returns the stop signal,
// 0 if none came.
// With `relay`, passes the nodes' output on around `line`, which says how
// many nodes still run.
int supervise(std::vector<RunningNode>& nodes, StopSignals& signals, Clock::time_point deadline,
              OutputRelay* relay, ProgressLine& line, double timeout) {
  int stop = 0;
  const auto ask_to_stop = [&](int signal) {
    if (stop != 0) {  // asked again: no more waiting
      deadline = Clock::now();
      return;
    }
    stop = signal;
    for (auto& n : nodes) {
      if (n.process.try_wait()) continue;
      n.process.signal(SIGTERM);
      n.asked_to_stop = true;
    }
    deadline = std::min(deadline, Clock::now() + kStopGrace);
  };
  if (const int early = signals.received(); early != 0) ask_to_stop(early);  // came during the setup
  for (;;) {
    std::vector<pollfd> fds{{signals.fd(), POLLIN, 0}};
    for (auto& n : nodes) {
      if (!n.process.try_wait()) fds.push_back({n.process.pidfd(), POLLIN, 0});
    }
    const auto running = fds.size() - 1;
    if (running == 0) return stop;
    // At end of file (every node closed its output) the pipe is no longer
    // polled: it would be readable forever.
    if (relay != nullptr && relay->pass_on(line)) fds.push_back({relay->read_fd(), POLLIN, 0});
    show_progress(line, nodes.size(), running, stop, timeout);
    const auto now = Clock::now();
    if (now >= deadline) {
      for (auto& n : nodes) {
        if (n.process.reaped()) continue;
        n.process.kill_all();
        n.process.wait();
        n.killed = true;
      }
      continue;
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    const std::int64_t longest = line.enabled() ? kProgressEveryMs : kLongestPollMs;
    if (::poll(fds.data(), fds.size(), static_cast<int>(std::min<std::int64_t>(wait.count(), longest))) < 0 &&
        errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    for (int s = signals.take(); s != 0; s = signals.take()) ask_to_stop(s);
  }
}

std::string node_list(const std::vector<unsigned>& ids) {
  return fmt::format("{} {}", ids.size() == 1 ? "node" : "nodes", fmt::join(ids, ", "));
}

// "ended nodes 0, 1 and their PEs; killed node 2 ...": what stopping did.
std::string what_was_stopped(const std::vector<RunningNode>& nodes) {
  std::vector<unsigned> ended;
  std::vector<unsigned> killed;
  for (unsigned n = 0; n < nodes.size(); ++n) {
    if (nodes[n].killed) {
      killed.push_back(n);
    } else if (nodes[n].asked_to_stop) {
      ended.push_back(n);
    }
  }
  std::vector<std::string> parts;
  if (!ended.empty()) parts.push_back(fmt::format("ended {} and their PEs", node_list(ended)));
  if (!killed.empty()) {
    parts.push_back(fmt::format("killed {} and their PEs (still running {} s after the signal)",
                                node_list(killed), kStopGrace.count()));
  }
  if (parts.empty()) parts.emplace_back(nodes.empty() ? "started no node" : "no node was running");
  return fmt::format("{}", fmt::join(parts, "; "));
}

std::string failure(const RunningNode& node, unsigned n, const ClusterSpec& spec) {
  const int status = node.process.status().value_or(0);
  if (node.killed) {
    return fmt::format("node {} failed: still running {} s after its timeout ({} s): killed with its PEs", n,
                       kTimeoutGrace.count(), spec.timeout_seconds);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == kNodeTimedOutExit) {
    return fmt::format("node {} failed: PEs still running at its timeout ({} s) were killed{}", n,
                       spec.timeout_seconds, spec.quiet ? " (below)" : " (named above)");
  }
  return fmt::format("node {} failed ({})", n, describe_status(status));
}

}  // namespace

ClusterResult run_cluster(const ClusterSpec& spec) {
  StopSignals signals;  // first: a signal during the setup stops what is set up so far
  const auto placements = place(spec);
  std::unique_ptr<NetworkNamespaces> namespaces;
  if (spec.netns) {
    namespaces = std::make_unique<NetworkNamespaces>(std::to_string(::getpid()),
                                                     static_cast<unsigned>(spec.nodes.size()));
  }
  const auto at = namespaces ? namespace_addresses(*namespaces, spec.nodes.size())
                             : loopback_addresses(spec.nodes.size());
  const std::string self = spec.vdtu_program.empty()
                               ? std::filesystem::read_symlink("/proc/self/exe").string()
                               : spec.vdtu_program;
  ScratchDirectory dir;  // private (0700): the key in its files stays ours
  const NodeFileInputs inputs{
      spec,
      placements,
      at.nodes,
      !at.sockets.empty(),
      spec.kernel_program.empty() ? sibling_program("semper_kernel") : spec.kernel_program,
      spec.insecure_plain ? std::string{} : bridge::random_cluster_key_hex()};
  const auto timeout =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(spec.timeout_seconds));
  const auto deadline = Clock::now() + timeout + kTimeoutGrace;
  ProgressLine progress(spec.progress && !spec.quiet);
  std::unique_ptr<OutputRelay> relay;
  if (progress.enabled()) relay = std::make_unique<OutputRelay>();
  std::vector<RunningNode> nodes;
  for (unsigned n = 0; n < spec.nodes.size() && signals.received() == 0; ++n) {
    const auto config = fmt::format("node-{}.toml", n);
    dir.write(config, node_file(inputs, n));
    const auto log = spec.quiet ? (dir / fmt::format("node-{}.log", n)).string() : std::string{};
    auto words = namespaces ? namespaces->exec_prefix(n) : std::vector<std::string>{};
    // Each node's stats socket sits in the private scratch directory, so only
    // the cluster's user reaches it (`vdtu stat --socket PATH`).
    const auto stats = (dir / fmt::format("node-{}.stats", n)).string();
    words.insert(words.end(), {self, "node", "--config", (dir / config).string(), "--timeout",
                               fmt::format("{}", spec.timeout_seconds), "--stats-socket", stats});
    if (!spec.quiet) {
      fmt::print("cluster: node {} stats socket {}\n", n, stats);
      (void)std::fflush(stdout);
    }
    nodes.push_back({start_node(std::move(words), log, at.sockets.empty() ? -1 : at.sockets[n].fd(),
                                relay ? relay->write_fd() : -1)});
  }
  if (relay) relay->close_write_end();
  const int stop = supervise(nodes, signals, deadline, relay.get(), progress, spec.timeout_seconds);
  if (relay) relay->finish(progress);
  progress.clear();
  if (stop != 0) {
    // Remove now, so that the line says what is gone rather than what will be.
    std::string line = fmt::format("cluster: stopped by {}: {}", signal_name(stop), what_was_stopped(nodes));
    if (namespaces) {
      const auto names = namespaces->names();
      const auto bridge = namespaces->bridge();
      const auto left = namespaces->remove();
      line += fmt::format("; removed network namespaces {}, their veths and bridge {}",
                          fmt::join(names, ", "), bridge);
      if (!left.empty()) line += fmt::format(" (could not remove {})", fmt::join(left, ", "));
    }
    const auto error = dir.remove();
    line += error ? fmt::format("; could not remove {}: {}", dir.path().string(), error.message())
                  : fmt::format("; removed {} (node files{})", dir.path().string(),
                                spec.insecure_plain ? "" : " with the cluster key");
    throw StoppedBySignal(stop, line);
  }
  ClusterResult result;
  for (unsigned n = 0; n < nodes.size(); ++n) {
    const auto status = nodes[n].process.status();
    if (!nodes[n].killed && status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) continue;
    ++result.nodes_failed;
    std::string what = failure(nodes[n], n, spec);
    if (spec.quiet) {
      std::ifstream log(dir / fmt::format("node-{}.log", n));
      for (std::string line; std::getline(log, line);) what += "\n    " + line;
    }
    result.failures.push_back(what);
  }
  return result;
}

}  // namespace vdtu::cluster
