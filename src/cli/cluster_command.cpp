// `vdtu cluster`: N nodes as N `vdtu node` processes joined by their bridges
// on loopback. The cluster file names kernels and their VPEs; this command
// assigns the global PE ranges, the kernels' membership table, the UDP ports
// and each node's configuration file.
#include "cluster_command.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "bridge/udp_socket.hpp"
#include "sibling_program.hpp"
#include "toml_file.hpp"

namespace vdtu::cli {
namespace {

struct Placement {
  unsigned kernel = 0;
  unsigned node = 0;
  unsigned first_pe = 0;
  unsigned kernel_pe = 0;  // the last PE of its range
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
                      const std::vector<std::uint16_t>& ports, const std::string& kernel_program) {
  constexpr std::uint64_t kGlobalMemory = std::uint64_t{64} << 20;
  std::string f = fmt::format(
      "[node]\nid = {}\nfirst_pe = {}\npes = {}\nendpoints_per_pe = {}\nglobal_memory_bytes = {}\n"
      "bridge_port = {}\n",
      n, n * spec.pes_per_node, spec.pes_per_node, spec.endpoints_per_pe, kGlobalMemory, ports[n]);
  for (unsigned peer = 0; peer < spec.nodes.size(); ++peer) {
    if (peer == n) continue;
    f += fmt::format("\n[[peer]]\nid = {}\nport = {}\nfirst_pe = {}\npes = {}\n", peer, ports[peer],
                     peer * spec.pes_per_node, spec.pes_per_node);
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

pid_t spawn_node(const std::string& self, const std::string& config, double timeout, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  std::vector<std::string> words{self, "node", "--config", config, "--timeout", fmt::format("{}", timeout)};
  std::vector<char*> argv;
  argv.reserve(words.size() + 1);
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("cannot start a node: " +
                             std::error_code(rc, std::generic_category()).message());
  }
  return pid;
}

}  // namespace

ClusterSpec echo_cluster(unsigned nodes, unsigned kernels_per_node) {
  if (nodes == 0 || kernels_per_node == 0 || nodes * kernels_per_node < 2)
    throw std::runtime_error("a cluster needs at least two kernels");
  const auto vpe = bench::sibling_program("apps/kernel_test_vpe");
  ClusterSpec spec;
  spec.nodes.resize(nodes);
  for (unsigned n = 0; n < nodes; ++n) {
    for (unsigned k = 0; k < kernels_per_node; ++k) {
      ClusterKernel kernel;
      const bool first = n == 0 && k == 0;
      kernel.vpes.push_back({vpe, first ? "gate-server" : "gate-client", "echo"});
      spec.nodes[n].kernels.push_back(std::move(kernel));
    }
  }
  return spec;
}

ClusterSpec parse_cluster(const std::string& path) {
  const auto root = load_toml(path);
  ClusterSpec spec;
  if (const auto* c = root["cluster"].as_table()) {
    spec.pes_per_node = number(*c, "pes_per_node", spec.pes_per_node);
    spec.endpoints_per_pe = number(*c, "endpoints_per_pe", spec.endpoints_per_pe);
    spec.timeout_seconds = (*c)["timeout"].value_or(spec.timeout_seconds);
  }
  const auto* nodes = root["node"].as_array();
  if (nodes == nullptr || nodes->empty()) throw std::runtime_error(path + ": no [[node]]");
  for (const auto& n : *nodes) {
    const auto* kernels = n.as_table() != nullptr ? (*n.as_table())["kernel"].as_array() : nullptr;
    if (kernels == nullptr || kernels->empty())
      throw std::runtime_error(path + ": every [[node]] needs a [[node.kernel]]");
    ClusterNode node;
    for (const auto& k : *kernels) {
      const auto* vpes = k.as_table() != nullptr ? (*k.as_table())["vpes"].as_array() : nullptr;
      if (vpes == nullptr)
        throw std::runtime_error(path + ": a kernel needs vpes = [[program, args...], ...]");
      ClusterKernel kernel;
      for (const auto& v : *vpes) {
        const auto* words = v.as_array();
        std::vector<std::string> command;
        if (words != nullptr) {
          for (const auto& w : *words) command.push_back(w.value_or(std::string{}));
        }
        if (command.empty() || command[0].empty()) throw std::runtime_error(path + ": a VPE needs a program");
        kernel.vpes.push_back(std::move(command));
      }
      node.kernels.push_back(std::move(kernel));
    }
    spec.nodes.push_back(std::move(node));
  }
  return spec;
}

ClusterResult run_cluster(const ClusterSpec& spec) {
  const auto placements = place(spec);
  std::vector<std::uint16_t> ports;
  for (std::size_t n = 0; n < spec.nodes.size(); ++n)
    ports.push_back(bridge::UdpSocket::bind("127.0.0.1", 0).port());
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string kernel =
      spec.kernel_program.empty() ? bench::sibling_program("apps/semper_kernel") : spec.kernel_program;
  std::string dir_template = (std::filesystem::temp_directory_path() / "vdtu-cluster-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr)
    throw std::runtime_error("cannot create a temporary directory");
  const std::filesystem::path dir(dir_template);
  std::vector<pid_t> pids;
  for (unsigned n = 0; n < spec.nodes.size(); ++n) {
    const auto config = dir / fmt::format("node-{}.toml", n);
    std::ofstream(config) << node_file(spec, n, placements, ports, kernel);
    const auto log = spec.quiet ? (dir / fmt::format("node-{}.log", n)).string() : std::string{};
    pids.push_back(spawn_node(self, config.string(), spec.timeout_seconds, log));
  }
  ClusterResult result;
  for (unsigned n = 0; n < pids.size(); ++n) {
    int status = 0;
    ::waitpid(pids[n], &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    ++result.nodes_failed;
    std::string what = fmt::format("node {} failed", n);
    if (spec.quiet) {
      std::ifstream log(dir / fmt::format("node-{}.log", n));
      for (std::string line; std::getline(log, line);) what += "\n    " + line;
    }
    result.failures.push_back(what);
  }
  std::filesystem::remove_all(dir);
  return result;
}

int run_cluster_command(const ClusterOptions& options) {
  auto spec = options.config_path.empty() ? echo_cluster(options.nodes, options.kernels_per_node)
                                          : parse_cluster(options.config_path);
  if (options.config_path.empty()) spec.timeout_seconds = options.timeout_seconds;
  unsigned kernels = 0;
  for (const auto& n : spec.nodes) kernels += static_cast<unsigned>(n.kernels.size());
  fmt::print("cluster: {} nodes, {} kernels, loopback UDP\n", spec.nodes.size(), kernels);
  (void)std::fflush(stdout);
  const auto result = run_cluster(spec);
  for (const auto& f : result.failures) fmt::print("cluster: {}\n", f);
  fmt::print("cluster: {} of {} nodes finished cleanly\n", spec.nodes.size() - result.nodes_failed,
             spec.nodes.size());
  return result.nodes_failed == 0 ? 0 : 1;
}

}  // namespace vdtu::cli
