#include "cluster_launch.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <utility>

#include "bridge/datagram_seal.hpp"
#include "bridge/udp_socket.hpp"
#include "child_process.hpp"
#include "common/sibling_program.hpp"
#include "network_namespaces.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::cluster {
namespace {

// In namespaces every node has its own address and port space.
constexpr std::uint16_t kNamespacePort = 7700;
// On loopback each node inherits its bound socket here: no other program can
// take the port between our choosing it and the node binding it.
constexpr int kInheritedSocketFd = 3;

struct Placement {
  unsigned kernel = 0;
  unsigned node = 0;
  unsigned first_pe = 0;
  unsigned kernel_pe = 0;  // the last PE of its range
};

// Where each node's bridge listens.
struct Addresses {
  std::vector<std::string> hosts;
  std::vector<std::uint16_t> ports;
  std::vector<bridge::UdpSocket> sockets;  // on loopback: bound already, handed to the nodes
};

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string toml_array(const std::vector<std::string>& words) {
  std::string out = "[";
  for (std::size_t i = 0; i < words.size(); ++i) out += (i > 0 ? ", " : "") + quoted(words[i]);
  return out + "]";
}
std::vector<Placement> place(const ClusterSpec& spec) {
  std::vector<Placement> out;
  unsigned kernel = 0;
  for (unsigned n = 0; n < spec.nodes.size(); ++n) {
    unsigned next = n * spec.pes_per_node;
    for (const auto& k : spec.nodes[n].kernels) {
      Placement p{kernel++, n, next, static_cast<unsigned>(next + k.vpes.size())};
      next = p.kernel_pe + 1;
      if (next > (n + 1) * spec.pes_per_node) {
        throw std::runtime_error(
            fmt::format("node {}: more PEs than pes_per_node = {}", n, spec.pes_per_node));
      }
      out.push_back(p);
    }
  }
  return out;
}

std::string node_file(const ClusterSpec& spec, unsigned n, const std::vector<Placement>& placements,
                      const Addresses& at, const std::string& kernel_program, const std::string& key) {
  constexpr std::uint64_t kGlobalMemory = std::uint64_t{64} << 20;
  std::string f = fmt::format(
      "[node]\nid = {}\nfirst_pe = {}\npes = {}\nendpoints_per_pe = {}\nglobal_memory_bytes = {}\n"
      "bridge_host = {}\nbridge_port = {}\n",
      n, n * spec.pes_per_node, spec.pes_per_node, spec.endpoints_per_pe, kGlobalMemory, quoted(at.hosts[n]),
      at.ports[n]);
  if (!key.empty()) f += fmt::format("cluster_key = \"{}\"\n", key);
  if (!at.sockets.empty()) f += fmt::format("bridge_fd = {}\n", kInheritedSocketFd);
  if (spec.loss > 0 || spec.duplicate > 0 || spec.reorder > 0) {
    f += fmt::format("\n[faults]\nloss = {}\nduplicate = {}\nreorder = {}\nseed = {}\n", spec.loss,
                     spec.duplicate, spec.reorder, n + 1);
  }
  for (unsigned peer = 0; peer < spec.nodes.size(); ++peer) {
    if (peer == n) continue;
    f += fmt::format("\n[[peer]]\nid = {}\nhost = {}\nport = {}\nfirst_pe = {}\npes = {}\n", peer,
                     quoted(at.hosts[peer]), at.ports[peer], peer * spec.pes_per_node, spec.pes_per_node);
  }
  std::vector<std::string> members;
  members.reserve(placements.size());
  for (const auto& p : placements)
    members.push_back(fmt::format("{}:{}:{}:{}-{}", p.kernel, p.node, p.kernel_pe, p.first_pe, p.kernel_pe));
  const auto kernels_here = static_cast<std::uint64_t>(spec.nodes[n].kernels.size());
  unsigned index = 0;
  for (const auto& p : placements) {
    if (p.node != n) continue;
    const auto& k = spec.nodes[n].kernels[index];
    std::vector<std::string> vpe_pes;
    for (const auto& vpe : k.vpes) {
      f += fmt::format("\n[[pe]]\nprogram = {}\nargs = {}\n", quoted(vpe.at(0)),
                       toml_array({vpe.begin() + 1, vpe.end()}));
      vpe_pes.push_back(std::to_string(p.first_pe + vpe_pes.size()));
    }
    std::vector<std::string> args{"--kernel", std::to_string(p.kernel), "--node", std::to_string(n)};
    if (!vpe_pes.empty()) args.insert(args.end(), {"--vpes", fmt::format("{}", fmt::join(vpe_pes, ","))});
    const auto share = kGlobalMemory / kernels_here;
    args.insert(args.end(),
                {"--global-memory", std::to_string(share), "--memory-offset", std::to_string(share * index)});
    for (const auto& m : members) args.insert(args.end(), {"--member", m});
    f += fmt::format("\n[[pe]]\nprogram = {}\nargs = {}\nprivileged = true\n", quoted(kernel_program),
                     toml_array(args));
    ++index;
  }
  return f;
}

// `words` may start with a prefix that runs the node elsewhere (inside a
// network namespace); `socket` (if >= 0) becomes the node's inherited socket.
pid_t spawn_node(std::vector<std::string> words, const std::string& log, int socket) {
  SpawnActions actions;
  UniqueFd moved;  // above the target, so that dup2 never maps an fd onto itself
  if (socket >= 0) {
    moved = UniqueFd(::fcntl(socket, F_DUPFD_CLOEXEC, kInheritedSocketFd + 1));
    if (!moved) throw std::runtime_error("cannot pass a socket to a node");
    actions.dup2(moved.get(), kInheritedSocketFd);
  }
  if (!log.empty()) {
    actions.open(1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    actions.dup2(1, 2);
  }
  return spawn(std::move(words), actions);
}

Addresses loopback_addresses(std::size_t nodes) {
  Addresses at;
  for (std::size_t n = 0; n < nodes; ++n) {
    at.hosts.emplace_back("127.0.0.1");
    at.sockets.push_back(bridge::UdpSocket::bind("127.0.0.1", 0));
    at.ports.push_back(at.sockets.back().port());
  }
  return at;
}

Addresses namespace_addresses(const NetworkNamespaces& namespaces, std::size_t nodes) {
  Addresses at;
  for (std::size_t n = 0; n < nodes; ++n) {
    at.hosts.push_back(namespaces.address(static_cast<unsigned>(n)));
    at.ports.push_back(kNamespacePort);
  }
  return at;
}

// The nodes' configuration files and logs, removed with what is in them.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string name = (std::filesystem::temp_directory_path() / "vdtu-cluster-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error("cannot create a temporary directory");
    path_ = name;
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] std::filesystem::path operator/(const std::string& file) const { return path_ / file; }

 private:
  std::filesystem::path path_;
};

// Node processes started so far; if starting the rest fails, they are killed.
class NodeProcesses {
 public:
  NodeProcesses() = default;
  NodeProcesses(const NodeProcesses&) = delete;
  NodeProcesses& operator=(const NodeProcesses&) = delete;
  ~NodeProcesses() {
    for (pid_t pid : running_) {
      if (pid <= 0) continue;  // already waited for
      ::kill(pid, SIGKILL);
      wait_for(pid);
    }
  }
  void add(pid_t pid) { running_.push_back(pid); }
  [[nodiscard]] std::size_t size() const { return running_.size(); }
  // Waits for node n; returns its wait status.
  int wait(std::size_t n) { return wait_for(std::exchange(running_[n], -1)); }

 private:
  std::vector<pid_t> running_;
};

}  // namespace

ClusterResult run_cluster(const ClusterSpec& spec) {
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
  const std::string kernel =
      spec.kernel_program.empty() ? sibling_program("apps/semper_kernel") : spec.kernel_program;
  const ScratchDirectory dir;  // private (0700): the key in its files stays ours
  const std::string key = spec.encrypt ? bridge::random_cluster_key_hex() : std::string{};
  NodeProcesses nodes;
  for (unsigned n = 0; n < spec.nodes.size(); ++n) {
    const auto config = dir / fmt::format("node-{}.toml", n);
    std::ofstream(config) << node_file(spec, n, placements, at, kernel, key);
    const auto log = spec.quiet ? (dir / fmt::format("node-{}.log", n)).string() : std::string{};
    auto words = namespaces ? namespaces->exec_prefix(n) : std::vector<std::string>{};
    words.insert(words.end(), {self, "node", "--config", config.string(), "--timeout",
                               fmt::format("{}", spec.timeout_seconds)});
    nodes.add(spawn_node(std::move(words), log, at.sockets.empty() ? -1 : at.sockets[n].fd()));
  }
  ClusterResult result;
  for (unsigned n = 0; n < nodes.size(); ++n) {
    const int status = nodes.wait(n);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    ++result.nodes_failed;
    std::string what = fmt::format("node {} failed", n);
    if (spec.quiet) {
      std::ifstream log(dir / fmt::format("node-{}.log", n));
      for (std::string line; std::getline(log, line);) what += "\n    " + line;
    }
    result.failures.push_back(what);
  }
  return result;
}

}  // namespace vdtu::cluster
