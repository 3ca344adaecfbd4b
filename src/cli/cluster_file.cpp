#include "cluster_file.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "common/sibling_program.hpp"
#include "config_file.hpp"
#include "program_name.hpp"
#include "protocol/doorbell.hpp"

namespace vdtu::cli {
namespace {

using cluster::ClusterKernel;
using cluster::ClusterNode;
using cluster::ClusterSpec;

constexpr std::int64_t kMaxPesPerNode = dtu::kChannelsPerEndpoint;  // as a node (src/node)
constexpr std::int64_t kMaxEndpoints = 255;
constexpr std::int64_t kFirstUnusablePe = 0xffff;  // the global memory's PE id

void read_settings(ConfigFile& file, const toml::table& table, ClusterSpec& spec) {
  ConfigTable t(file, table, "[cluster]",
                {"pes_per_node", "endpoints_per_pe", "timeout", "netns", "insecure_plain", "encrypt", "loss",
                 "duplicate", "reorder"});
  spec.pes_per_node = t.integer("pes_per_node", 2, kMaxPesPerNode, spec.pes_per_node);
  spec.endpoints_per_pe = t.integer("endpoints_per_pe", 1, kMaxEndpoints, spec.endpoints_per_pe);
  spec.timeout_seconds =
      t.number("timeout", 0.001, cluster::kMaxTimeoutSeconds, spec.timeout_seconds, "seconds");
  spec.netns = t.boolean("netns", spec.netns);
  spec.insecure_plain = t.boolean("insecure_plain", spec.insecure_plain);
  // Sealing was optional once (encrypt = true); it is the default now.
  if (t.has("encrypt") && !t.boolean("encrypt", true)) {
    t.mistake("encrypt",
              "false no longer means plain datagrams: they are sealed unless insecure_plain = true");
  }
  spec.loss = t.number("loss", 0, 1, spec.loss, "a probability");
  spec.duplicate = t.number("duplicate", 0, 1, spec.duplicate, "a probability");
  spec.reorder = t.number("reorder", 0, 1, spec.reorder, "a probability");
}

std::vector<std::string> read_vpe(ConfigFile& file, const toml::node& entry, const std::string& name) {
  std::vector<std::string> command;
  const auto* words = entry.as_array();
  if (words == nullptr || words->empty()) {
    file.mistake(entry.source(), name + ": expected [program, arguments...]");
    return command;
  }
  for (std::size_t i = 0; i < words->size(); ++i) {
    const auto& w = *words->get(i);
    const auto* s = w.as_string();
    if (s == nullptr || s->get().empty()) {
      file.mistake(w.source(),
                   fmt::format("{}[{}]: expected a non-empty string, found {}", name, i, found(w)));
      continue;
    }
    command.push_back(s->get());
  }
  if (!command.empty() && words->get(0)->is_string()) {
    auto& program = command[0];
    const auto named = program;
    program = resolve_program(named);
    if (auto why = program_mistake(named, program)) file.mistake(words->get(0)->source(), name + ": " + *why);
  }
  return command;
}

ClusterKernel read_kernel(ConfigFile& file, const toml::table& table, const std::string& name) {
  ConfigTable t(file, table, name, {"vpes"});
  ClusterKernel kernel;
  const auto* vpes = t.array("vpes", "[[program, arguments...], ...]");
  if (vpes == nullptr) {
    if (!t.has("vpes"))
      t.mistake("vpes", "missing: vpes = [[program, arguments...], ...] (or [] for a kernel without VPEs)");
    return kernel;
  }
  for (std::size_t i = 0; i < vpes->size(); ++i)
    kernel.vpes.push_back(read_vpe(file, *vpes->get(i), fmt::format("{} vpes[{}]", name, i)));
  return kernel;
}

ClusterNode read_node(ConfigFile& file, const toml::table& table, const std::string& name) {
  ConfigTable t(file, table, name, {"kernel"});
  ClusterNode node;
  const auto* kernels = t.array("kernel", "tables ([[node.kernel]])");
  if (kernels == nullptr || kernels->empty()) {
    if (kernels == nullptr && !t.has("kernel"))
      t.mistake("kernel", "missing: every [[node]] needs a [[node.kernel]]");
    return node;
  }
  for (std::size_t k = 0; k < kernels->size(); ++k) {
    const auto kernel_name = fmt::format("{} [[node.kernel]] {}", name, k + 1);
    if (const auto* kt = kernels->get(k)->as_table()) {
      node.kernels.push_back(read_kernel(file, *kt, kernel_name));
    } else {
      file.mistake(kernels->get(k)->source(), kernel_name + ": expected a table");
    }
  }
  return node;
}

// Checks between keys, once each key is fine by itself.
void check_together(ConfigFile& file, const ClusterSpec& spec,
                    const std::vector<toml::source_region>& node_sources,
                    const toml::source_region& settings) {
  if (spec.nodes.size() > cluster::kMaxNodes) {
    file.mistake(node_sources[cluster::kMaxNodes],
                 fmt::format("{} [[node]]s: at most {}", spec.nodes.size(), cluster::kMaxNodes));
  }
  if (static_cast<std::int64_t>(spec.nodes.size()) * spec.pes_per_node > kFirstUnusablePe) {
    file.mistake(settings,
                 fmt::format("[cluster] pes_per_node = {}: {} nodes of {} PEs need PE ids beyond {:#x}",
                             spec.pes_per_node, spec.nodes.size(), spec.pes_per_node, kFirstUnusablePe - 1));
  }
  std::size_t kernels = 0;
  for (std::size_t n = 0; n < spec.nodes.size(); ++n) {
    std::size_t pes = 0;
    for (const auto& k : spec.nodes[n].kernels) pes += k.vpes.size() + 1;
    kernels += spec.nodes[n].kernels.size();
    if (pes > spec.pes_per_node) {
      file.mistake(node_sources[n], fmt::format("[[node]] {}: its VPEs and kernels need {} PEs, more than "
                                                "pes_per_node = {}",
                                                n + 1, pes, spec.pes_per_node));
    }
  }
  if (kernels > cluster::kMaxKernels) {
    file.mistake(node_sources.back(), fmt::format("{} kernels: a cluster has at most {} (each kernel has an "
                                                  "endpoint and a channel to every other)",
                                                  kernels, cluster::kMaxKernels));
  }
}

}  // namespace

ClusterSpec parse_cluster_file(const std::string& path) {
  ConfigFile file(path);
  ConfigTable root(file, file.root(), "", {"cluster", "node"});
  ClusterSpec spec;
  const auto* settings = root.table("cluster");
  if (settings != nullptr) read_settings(file, *settings, spec);
  std::vector<toml::source_region> node_sources;
  const auto* nodes = root.array("node", "tables ([[node]])");
  if (nodes == nullptr || nodes->empty()) {
    if (!root.has("node") || nodes != nullptr) file.mistake(file.root().source(), "no [[node]]");
  } else {
    for (std::size_t n = 0; n < nodes->size(); ++n) {
      const auto name = fmt::format("[[node]] {}", n + 1);
      if (const auto* t = nodes->get(n)->as_table()) {
        spec.nodes.push_back(read_node(file, *t, name));
        node_sources.push_back(t->source());
      } else {
        file.mistake(nodes->get(n)->source(), name + ": expected a table");
      }
    }
  }
  file.throw_mistakes();
  check_together(file, spec, node_sources, settings != nullptr ? settings->source() : file.root().source());
  file.throw_mistakes();
  return spec;
}

}  // namespace vdtu::cli
