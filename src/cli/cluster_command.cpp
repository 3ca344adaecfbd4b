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
#include "common/sibling_program.hpp"
#include "toml_file.hpp"

namespace vdtu::cli {
ClusterSpec echo_cluster(unsigned nodes, unsigned kernels_per_node) {
  if (nodes == 0 || kernels_per_node == 0 || nodes * kernels_per_node < 2)
    throw std::runtime_error("a cluster needs at least two kernels");
  const auto vpe = sibling_program("apps/kernel_test_vpe");
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
    spec.netns = (*c)["netns"].value_or(spec.netns);
    spec.encrypt = (*c)["encrypt"].value_or(spec.encrypt);
    spec.loss = probability(*c, "loss", spec.loss);
    spec.duplicate = probability(*c, "duplicate", spec.duplicate);
    spec.reorder = probability(*c, "reorder", spec.reorder);
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

int run_cluster_command(const ClusterOptions& options) {
  auto spec = options.config_path.empty() ? echo_cluster(options.nodes, options.kernels_per_node)
                                          : parse_cluster(options.config_path);
  if (options.config_path.empty()) spec.timeout_seconds = options.timeout_seconds;
  spec.netns = spec.netns || options.netns;
  spec.encrypt = spec.encrypt || options.encrypt;
  if (options.loss > 0) spec.loss = options.loss;
  if (options.duplicate > 0) spec.duplicate = options.duplicate;
  if (options.reorder > 0) spec.reorder = options.reorder;
  unsigned kernels = 0;
  for (const auto& n : spec.nodes) kernels += static_cast<unsigned>(n.kernels.size());
  fmt::print("cluster: {} nodes, {} kernels, {}{}\n", spec.nodes.size(), kernels,
             spec.netns ? "a network namespace per node (veth + bridge)" : "loopback UDP",
             spec.encrypt ? ", datagrams sealed with a random cluster key" : "");
  (void)std::fflush(stdout);
  const auto result = run_cluster(spec);
  for (const auto& f : result.failures) fmt::print("cluster: {}\n", f);
  fmt::print("cluster: {} of {} nodes finished cleanly\n", spec.nodes.size() - result.nodes_failed,
             spec.nodes.size());
  return result.nodes_failed == 0 ? 0 : 1;
}

}  // namespace vdtu::cli
