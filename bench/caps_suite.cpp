// `vdtu bench caps`: capability operations as a VPE sees them (request to
// reply), in the manner of SemperOS's capbench and capchain. A node runs here;
// the kernel is semper_kernel; the VPEs are this executable as PEs.
#include <fmt/core.h>
#include <csignal>

#include <chrono>
#include <map>
#include <thread>

#include "baselines.hpp"
#include "common/sibling_program.hpp"
#include "node/node.hpp"
#include "sample_file.hpp"
#include "suites.hpp"
#include "token_ring.hpp"
#include "vdtu/semper.hpp"
#include "vpe_timing.hpp"

namespace vdtu::bench {
namespace {

using namespace std::chrono_literals;
using semper::Syscalls;

constexpr kif::Selector kPartner = 10;
constexpr kif::Selector kRoot = 100;

int caps_client(Dtu& dtu, const std::vector<std::string>& a) {
  SampleWriter out(a.at(0));
  const bool quick = a.at(1) == "quick";
  Syscalls sys(dtu);
  const int noops = quick ? 2'000 : 20'000;
  const int reps = quick ? 50 : 1'000;
  for (int i = 0; i < noops / 10; ++i) require(sys.noop(), "noop");
  for (int i = 0; i < noops; ++i) out.add("noop_syscall", time_ns([&] { require(sys.noop(), "noop"); }));

  require(sys.req_mem(kRoot, 4096, kif::kPermRW), "req_mem");
  for (int i = 0; i < reps; ++i) {
    out.add("local_exchange", time_ns([&] { require(sys.delegate_to(kPartner, kRoot, 200), "exchange"); }));
    out.add("local_revoke", time_ns([&] { require(sys.revoke(kRoot, 1, false), "revoke"); }));
  }
  for (kif::Selector depth : {10U, 25U, 50U, 100U}) {
    for (int i = 0; i < reps / 5; ++i) {
      for (kif::Selector s = 0; s < depth; ++s)
        require(sys.delegate_to(kif::kSelSelf, kRoot + s, kRoot + s + 1), "chain");
      out.add(fmt::format("chain_revoke_{}", depth),
              time_ns([&] { require(sys.revoke(kRoot, 1, false), "chain revoke"); }));
    }
  }
  for (kif::Selector children : {100U, 1000U}) {
    for (int i = 0; i < (quick ? 3 : 30); ++i) {
      for (kif::Selector c = 0; c < children; ++c) {
        require(sys.derive_mem(kRoot, 1000 + c, 0, 64, kif::kPermR), "derive");
      }
      out.add(fmt::format("tree_revoke_{}", children),
              time_ns([&] { require(sys.revoke(kRoot, 1, false), "tree revoke"); }));
    }
  }
  return 0;
}

int caps_partner(Dtu& dtu, const std::vector<std::string>&) {
  Syscalls sys(dtu);
  for (;;) dtu.wait(1s);  // holds what it is given until the benchmark ends it
}

}  // namespace

int run_caps_role(const std::string& role, Dtu& dtu, const std::vector<std::string>& args) {
  if (role == "caps-client") return caps_client(dtu, args);
  if (role == "caps-partner") return caps_partner(dtu, args);
  return -1;
}

void run_caps_suite(Reporter& reporter, const SuiteOptions& options) {
  const std::string suite = "caps";
  reporter.progress("the cache-line baseline");
  reporter.add(latency_result(suite, "baseline_cacheline_pingpong_rtt", cacheline_pingpong_ns(20'000)));
  // Every figure here is VPE -> kernel -> VPE: two parties (the partner and
  // the node only hold state), unpinned, waiting as vdtu waits.
  const std::size_t floor_rounds = options.quick ? 2'000 : 20'000;
  const auto floor =
      latency_result(suite, "floor_2_parties",
                     token_ring_ns(there_and_back("floor_2_parties", 2), floor_rounds, floor_rounds / 10));
  reporter.add(floor);
  SampleDirectory dir;
  const std::string file = dir.file("client");
  {
    dtu::Node node(dtu::NodeConfig{});
    const auto self = sibling_program("vdtu");
    const PeId client =
        node.launch({self, {"pe-bench", "caps-client", file, options.quick ? "quick" : "full"}, false});
    const PeId partner = node.launch({self, {"pe-bench", "caps-partner"}, false});
    const auto vpes = fmt::format("{},{}", client, partner);
    const PeId kernel =
        node.launch({sibling_program("semper_kernel"),
                     {"--vpes", vpes, "--grant", fmt::format("{}:{}:{}", client, partner, kPartner)},
                     true});
    for (int i = 0; i < 6000 && !node.exit_code(client); ++i) {
      if (i % 20 == 0) reporter.progress("syscalls, exchanges and revocations in a VPE");
      std::this_thread::sleep_for(50ms);
    }
    ::kill(node.pid_of(partner), SIGTERM);
    if (!node.wait_all_exited(std::chrono::seconds(30)))
      throw std::runtime_error("benchmark PEs did not finish");
    if (node.exit_code(client) != 0 || node.exit_code(kernel) != 0) {
      throw std::runtime_error("benchmark client or kernel failed");
    }
  }
  auto samples = read_samples(file);
  reporter.note("VPEs and the kernel are PE processes; times are request to reply as the VPE sees them");
  for (const char* name :
       {"noop_syscall", "local_exchange", "local_revoke", "chain_revoke_10", "chain_revoke_25",
        "chain_revoke_50", "chain_revoke_100", "tree_revoke_100", "tree_revoke_1000"}) {
    reporter.add(against(latency_result(suite, name, samples[name]), floor));
  }
}

}  // namespace vdtu::bench
