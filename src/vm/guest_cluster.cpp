#include "guest_cluster.hpp"

#include <fmt/core.h>

#include <filesystem>
#include <set>
#include <stdexcept>

#include "bridge/cluster_key.hpp"
#include "cluster/node_files.hpp"
#include "common/sibling_program.hpp"
#include "guest_lan.hpp"

namespace vdtu::vm {
namespace {

constexpr std::uint16_t kBridgePort = 7000;
constexpr double kBootAllowanceSeconds = 90;  // TCG boots on a busy host take a while

std::string guest_ip(unsigned n) { return fmt::format("10.77.0.{}", n + 1); }

// Every program a node starts, and vdtu itself: they go into the image.
std::vector<std::string> programs_of(const cluster::ClusterSpec& spec, const std::string& kernel) {
  std::set<std::string> programs{std::filesystem::read_symlink("/proc/self/exe").string(), kernel};
  for (const auto& node : spec.nodes) {
    for (const auto& k : node.kernels) {
      for (const auto& vpe : k.vpes) programs.insert(vpe.at(0));
    }
  }
  return {programs.begin(), programs.end()};
}

}  // namespace

cluster::ClusterResult run_cluster_in_guests(const cluster::ClusterSpec& spec_in,
                                             const GuestClusterOptions& options) {
  auto spec = spec_in;
  if (!options.sandbox.empty()) {
    for (auto& node : spec.nodes) {
      if (node.sandbox.empty()) node.sandbox = options.sandbox;
    }
  }
  const auto placements = cluster::place(spec);
  if (spec.nodes.size() > 200) throw std::runtime_error("at most 200 guests (one /24)");
  const auto kernel = spec.kernel_program.empty() ? sibling_program("semper_kernel") : spec.kernel_program;
  const auto image = build_guest_image(programs_of(spec, kernel));

  std::vector<cluster::NodeAddress> addresses;
  for (unsigned n = 0; n < spec.nodes.size(); ++n) addresses.push_back({guest_ip(n), kBridgePort});
  const cluster::NodeFileInputs inputs{
      spec,  placements, addresses,
      false, kernel,     spec.insecure_plain ? std::string{} : bridge::random_cluster_key_hex()};
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<GuestSpec> guests;
  for (unsigned n = 0; n < spec.nodes.size(); ++n) {
    GuestSpec g;
    g.name = fmt::format("node {}", n);
    g.mac = fmt::format("52:54:00:77:00:{:02x}", n + 1);
    g.address = guest_ip(n) + "/24";
    g.memory_mib = options.memory_mib;
    g.echo_console = options.echo_consoles;
    g.echo_prefix = g.name;
    // The key travels in the node file, inside this run's own archive: it is
    // never on a command line and never in the cached image.
    g.files.emplace_back("/vdtu/node.toml", cluster::node_file(inputs, n));
    g.command = fmt::format("{} node --config /vdtu/node.toml --timeout {}", self, spec.timeout_seconds);
    guests.push_back(std::move(g));
  }
  const auto outcomes =
      run_guests_on(options.link, guests, image, spec.timeout_seconds + kBootAllowanceSeconds);
  cluster::ClusterResult result;
  for (unsigned n = 0; n < outcomes.size(); ++n) {
    if (outcomes[n].exit_status == 0) continue;
    ++result.nodes_failed;
    std::string what = fmt::format("node {} failed in its guest: {}", n, outcomes[n].description);
    if (!options.echo_consoles) what += "\n    console:\n" + outcomes[n].console;
    result.failures.push_back(what);
  }
  return result;
}

}  // namespace vdtu::vm
