// The SemperOS kernel as a privileged PE of a vdtu node.
//   semper_kernel [--vpes 0,1,2] [--grant HOLDER:TARGET:SELECTOR ...]
//                 [--kernel ID --member KERNEL:NODE:KERNEL_PE:FIRST_PE-LAST_PE ...]
#include <fmt/core.h>

#include <CLI/CLI.hpp>

#include "common/log.hpp"
#include "kernel/kernel_loop.hpp"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"SemperOS kernel on the vdtu virtual DTU (run by `vdtu node`)"};
  std::vector<unsigned> vpes;
  std::vector<std::string> grants;
  std::vector<std::string> members;
  vdtu::kernel::KernelBoot boot;
  app.add_option("--vpes", vpes, "PEs running this kernel's VPEs (none: it only answers other kernels)")
      ->delimiter(',');
  app.add_option("--grant", grants, "Give VPE HOLDER a capability for VPE TARGET at SELECTOR (H:T:S)");
  app.add_option("--global-memory", boot.global_memory_bytes, "Bytes of the node's global memory");
  app.add_option("--pe-memory", boot.pe_memory_bytes, "Bytes of each PE's local memory");
  app.add_option("--memory-offset", boot.global_memory_offset,
                 "Where this kernel's share of global memory starts");
  app.add_option("--kernel", boot.self, "This kernel's id (with --member)");
  app.add_option("--node", boot.node, "The node this kernel runs on (with --member)");
  app.add_option("--member", members, "A kernel of the cluster, this one too (K:NODE:KPE:FIRST-LAST)");
  std::string log_level;
  app.add_option(
      "--log-level", log_level,
      std::string("Event log level: ") + vdtu::kLogLevels + " (default: $VDTU_LOG_LEVEL, else info)");
  CLI11_PARSE(app, argc, argv);
  if (log_level.empty()) {
    vdtu::set_log_level_from_environment();
  } else {
    vdtu::set_log_level(log_level);
  }
  for (const auto& m : members) {
    unsigned k = 0, node = 0, kpe = 0, first = 0, last = 0;
    if (std::sscanf(m.c_str(), "%u:%u:%u:%u-%u", &k, &node, &kpe, &first, &last) != 5 || first > last) {
      fmt::print(stderr, "semper_kernel: --member wants KERNEL:NODE:KERNEL_PE:FIRST-LAST, got '{}'\n", m);
      return 64;
    }
    boot.members.push_back({static_cast<std::uint16_t>(k), static_cast<std::uint16_t>(node),
                            static_cast<vdtu::PeId>(kpe), static_cast<vdtu::PeId>(first),
                            static_cast<vdtu::PeId>(last)});
  }
  for (unsigned pe : vpes) boot.vpes.push_back(static_cast<vdtu::PeId>(pe));
  for (const auto& g : grants) {
    unsigned h = 0, t = 0, s = 0;
    if (std::sscanf(g.c_str(), "%u:%u:%u", &h, &t, &s) != 3) {
      fmt::print(stderr, "semper_kernel: --grant wants HOLDER:TARGET:SELECTOR, got '{}'\n", g);
      return 64;
    }
    boot.grants.push_back({static_cast<vdtu::VpeId>(h), static_cast<vdtu::VpeId>(t), s});
  }
  try {
    auto dtu = vdtu::Dtu::from_environment();
    return vdtu::kernel::run_kernel(*dtu, boot);
  } catch (const std::exception& e) {
    fmt::print(stderr, "semper_kernel: {}\n", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // nothing may escape main
    fmt::print(stderr, "semper_kernel: {}\n", e.what());
    return 1;
  }
}
