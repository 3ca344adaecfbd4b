#include "node_files.hpp"

#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

#include "protocol/doorbell.hpp"

namespace vdtu::cluster {
namespace {

constexpr std::uint64_t kGlobalMemory = std::uint64_t{64} << 20;
constexpr std::uint32_t kMaxPesPerNode =
    dtu::kChannelsPerEndpoint;  // a receive endpoint has a channel per PE of its node
constexpr std::uint32_t kMaxEndpointsPerPe = 255;
constexpr std::uint32_t kFirstUnusablePe = 0xffff;  // the global memory's PE id

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string toml_array(const std::vector<std::string>& words) {
  std::string out = "[";
  for (std::size_t i = 0; i < words.size(); ++i) out += (i > 0 ? ", " : "") + quoted(words[i]);
  return out + "]";
}

}  // namespace

void check(const ClusterSpec& spec) {
  if (spec.nodes.empty() || spec.nodes.size() > kMaxNodes) {
    throw std::runtime_error(
        fmt::format("a cluster has 1 to {} nodes, not {}", kMaxNodes, spec.nodes.size()));
  }
  if (spec.pes_per_node < 2 || spec.pes_per_node > kMaxPesPerNode)
    throw std::runtime_error(fmt::format("pes_per_node must be 2 to {}", kMaxPesPerNode));
  if (spec.nodes.size() * spec.pes_per_node > kFirstUnusablePe) {
    throw std::runtime_error(fmt::format("{} nodes of {} PEs need PE ids beyond {:#x}", spec.nodes.size(),
                                         spec.pes_per_node, kFirstUnusablePe - 1));
  }
  std::size_t kernels = 0;
  for (std::size_t n = 0; n < spec.nodes.size(); ++n) {
    const auto& node = spec.nodes[n];
    if (node.kernels.empty()) throw std::runtime_error(fmt::format("node {} has no kernel", n));
    std::size_t pes = 0;
    for (const auto& k : node.kernels) {
      for (const auto& vpe : k.vpes) {
        if (vpe.empty() || vpe[0].empty())
          throw std::runtime_error(fmt::format("a VPE of node {} has no program", n));
      }
      pes += k.vpes.size() + 1;
    }
    if (pes > spec.pes_per_node) {
      throw std::runtime_error(
          fmt::format("node {} needs {} PEs (its VPEs and kernels), more than pes_per_node = {}", n, pes,
                      spec.pes_per_node));
    }
    kernels += node.kernels.size();
  }
  if (kernels > kMaxKernels) {
    throw std::runtime_error(fmt::format(
        "a cluster has at most {} kernels, not {} (each kernel has an endpoint and a channel to every other)",
        kMaxKernels, kernels));
  }
  if (spec.endpoints_per_pe < 1 || spec.endpoints_per_pe > kMaxEndpointsPerPe)
    throw std::runtime_error(fmt::format("endpoints_per_pe must be 1 to {}", kMaxEndpointsPerPe));
  if (!(spec.timeout_seconds > 0 && spec.timeout_seconds <= kMaxTimeoutSeconds))
    throw std::runtime_error(fmt::format("the timeout must be above 0 and at most {} s", kMaxTimeoutSeconds));
  for (double p : {spec.loss, spec.duplicate, spec.reorder}) {
    if (!(p >= 0 && p <= 1))
      throw std::runtime_error("loss, duplicate and reorder are probabilities (0 to 1)");
  }
}

std::vector<Placement> place(const ClusterSpec& spec) {
  check(spec);
  std::vector<Placement> out;
  unsigned kernel = 0;
  for (unsigned n = 0; n < spec.nodes.size(); ++n) {
    unsigned next = n * spec.pes_per_node;
    for (const auto& k : spec.nodes[n].kernels) {
      const Placement p{kernel++, n, next, static_cast<unsigned>(next + k.vpes.size())};
      next = p.kernel_pe + 1;
      out.push_back(p);
    }
  }
  return out;
}

std::string node_file(const NodeFileInputs& in, unsigned n) {
  const auto& spec = in.spec;
  const auto& at = in.addresses;
  std::string f = fmt::format(
      "[node]\nid = {}\nfirst_pe = {}\npes = {}\nendpoints_per_pe = {}\nprivileged_endpoints = {}\n"
      "global_memory_bytes = {}\nbridge_host = {}\nbridge_port = {}\n",
      n, n * spec.pes_per_node, spec.pes_per_node, spec.endpoints_per_pe,
      kernel_endpoints(in.placements.size(), spec.endpoints_per_pe), kGlobalMemory, quoted(at[n].host),
      at[n].port);
  if (spec.nodes.size() > 1) {
    f += in.cluster_key.empty() ? std::string("insecure_plain = true\n")
                                : fmt::format("cluster_key = \"{}\"\n", in.cluster_key);
  }
  if (in.inherited_sockets) f += fmt::format("bridge_fd = {}\n", kInheritedSocketFd);
  if (!spec.nodes[n].sandbox.empty()) f += fmt::format("sandbox = {}\n", quoted(spec.nodes[n].sandbox));
  if (spec.loss > 0 || spec.duplicate > 0 || spec.reorder > 0) {
    f += fmt::format("\n[faults]\nloss = {}\nduplicate = {}\nreorder = {}\nseed = {}\n", spec.loss,
                     spec.duplicate, spec.reorder, n + 1);
  }
  for (unsigned peer = 0; peer < spec.nodes.size(); ++peer) {
    if (peer == n) continue;
    f += fmt::format("\n[[peer]]\nid = {}\nhost = {}\nport = {}\nfirst_pe = {}\npes = {}\n", peer,
                     quoted(at[peer].host), at[peer].port, peer * spec.pes_per_node, spec.pes_per_node);
  }
  std::vector<std::string> members;
  members.reserve(in.placements.size());
  for (const auto& p : in.placements)
    members.push_back(fmt::format("{}:{}:{}:{}-{}", p.kernel, p.node, p.kernel_pe, p.first_pe, p.kernel_pe));
  const auto kernels_here = static_cast<std::uint64_t>(spec.nodes[n].kernels.size());
  unsigned index = 0;
  for (const auto& p : in.placements) {
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
    f += fmt::format("\n[[pe]]\nprogram = {}\nargs = {}\nprivileged = true\n", quoted(in.kernel_program),
                     toml_array(args));
    ++index;
  }
  return f;
}

}  // namespace vdtu::cluster
