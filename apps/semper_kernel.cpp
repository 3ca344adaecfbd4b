// The SemperOS kernel as a privileged PE of a vdtu node.
//   semper_kernel --vpes 0,1,2 [--grant HOLDER:TARGET:SELECTOR ...]
#include <fmt/core.h>

#include <CLI/CLI.hpp>

#include "kernel/kernel_loop.hpp"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"SemperOS kernel on the vdtu virtual DTU (run by `vdtu node`)"};
  std::vector<unsigned> vpes;
  std::vector<std::string> grants;
  vdtu::kernel::KernelBoot boot;
  app.add_option("--vpes", vpes, "PEs running this kernel's VPEs")->delimiter(',')->required();
  app.add_option("--grant", grants, "Give VPE HOLDER a capability for VPE TARGET at SELECTOR (H:T:S)");
  app.add_option("--global-memory", boot.global_memory_bytes, "Bytes of the node's global memory");
  app.add_option("--pe-memory", boot.pe_memory_bytes, "Bytes of each PE's local memory");
  CLI11_PARSE(app, argc, argv);
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
