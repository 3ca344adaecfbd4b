// `vdtu bench spanning`: capability operations whose capabilities live on two
// kernels, in the manner of SemperOS's spanning capbench and capchain. Two
// setups, each a real cluster of `vdtu node` processes: two kernels on one
// node (kernel-to-kernel DTU channels), and one kernel on each of two nodes
// (the bridges carry every kernelcall over loopback UDP). A server VPE on
// kernel 0 offers a session; a client VPE on kernel 1 measures.
#include <fmt/core.h>

#include <array>
#include <chrono>
#include <map>
#include <thread>

#include "baselines.hpp"
#include "cluster/cluster_launch.hpp"
#include "common/sibling_program.hpp"
#include "sample_file.hpp"
#include "suites.hpp"
#include "token_ring.hpp"
#include "vdtu/semper.hpp"
#include "vpe_timing.hpp"

namespace vdtu::bench {
namespace {

using namespace std::chrono_literals;
using semper::Error;
using semper::Syscalls;

constexpr const char* kService = "spanning";
constexpr EpId kServiceEp = 3;
constexpr kif::Selector kSession = 10;
constexpr kif::Selector kObtained = 40;
constexpr kif::Selector kRoot = 100;
constexpr kif::Selector kServerMemory = 30;
// OBTAIN's argument says what the server hands out.
constexpr std::uint64_t kHandOutMemory = 0;         // its own memory capability
constexpr std::uint64_t kHandOutLastDelegated = 1;  // what the client delegated last (chains)
constexpr unsigned kChainDepths[] = {10, 50, 100};

void open_session(Syscalls& sys) {
  for (int attempt = 0; attempt < 10'000; ++attempt) {
    const auto e = sys.create_sess(kSession, kService);
    if (e == Error::kNone) return;
    if (e != Error::kNoSuchService) require(e, "create_sess");
    std::this_thread::sleep_for(1ms);  // the server's kernel has not announced it yet
  }
  throw std::runtime_error("the spanning service never appeared");
}

// A chain of `depth` capabilities below kRoot that alternates between the
// kernels: the client delegates its newest link, then obtains it back.
void build_chain(Syscalls& sys, unsigned depth) {
  kif::Selector newest = kRoot;
  for (unsigned links = 0; links < depth; links += 2) {
    require(sys.delegate(kSession, newest, 1), "chain delegate");
    require(sys.obtain(kSession, ++newest, 1, kHandOutLastDelegated), "chain obtain");
  }
}

int spanning_client(Dtu& dtu, const std::vector<std::string>& a) {
  SampleWriter out(a.at(0));
  const bool quick = a.at(1) == "quick";
  const std::string& setup = a.at(2);
  const int reps = quick ? 30 : 2'000;
  const int chains = quick ? 3 : 50;
  Syscalls sys(dtu);
  open_session(sys);
  require(sys.req_mem(kRoot, 4096, kif::kPermRW), "req_mem");
  for (int i = 0; i < reps / 10; ++i) require(sys.noop(), "noop");
  for (int i = 0; i < reps; ++i) out.add(setup + "_noop", time_ns([&] { require(sys.noop(), "noop"); }));
  for (int i = 0; i < reps; ++i) {
    out.add(setup + "_obtain",
            time_ns([&] { require(sys.obtain(kSession, kObtained, 1, kHandOutMemory), "obtain"); }));
    out.add(setup + "_revoke_obtained", time_ns([&] { require(sys.revoke(kObtained), "revoke obtained"); }));
    out.add(setup + "_delegate", time_ns([&] { require(sys.delegate(kSession, kRoot, 1), "delegate"); }));
    out.add(setup + "_revoke", time_ns([&] { require(sys.revoke(kRoot, 1, false), "revoke"); }));
  }
  // The server's memory, through a memory endpoint: on its node, or (nodes)
  // on the other node, every access carried by both bridges.
  constexpr EpId kMemoryEp = 8;
  require(sys.obtain(kSession, kObtained, 1, kHandOutMemory), "obtain memory");
  require(sys.activate(kObtained, kMemoryEp), "activate memory");
  std::array<std::byte, 8> word{};
  for (int i = 0; i < reps; ++i) {
    out.add(setup + "_memory_read_8B", time_ns([&] {
              if (dtu.read(kMemoryEp, 0, word) != Status::kOk) throw std::runtime_error("memory read failed");
            }));
  }
  require(sys.revoke(kObtained), "revoke memory");
  for (unsigned depth : kChainDepths) {
    for (int i = 0; i < chains; ++i) {
      build_chain(sys, depth);
      out.add(fmt::format("{}_chain_revoke_{}", setup, depth),
              time_ns([&] { require(sys.revoke(kRoot, 1, false), "chain revoke"); }));
    }
  }
  return 0;
}

// Hands out its memory or the client's latest delegation; serves until its
// kernel shuts the service down (the client has exited).
int spanning_server(Dtu& dtu, const std::vector<std::string>&) {
  Syscalls sys(dtu);
  require(sys.req_mem(kServerMemory, 4096, kif::kPermRW), "req_mem");
  constexpr kif::Selector kFirstFree = 1000, kSelectors = 50'000;
  kif::Selector next = 0;
  kif::Selector last_delegated = 0;
  semper::Server server(
      sys, kService, kServiceEp, 20, 21,
      {.open = accept_any_session,
       .obtain =
           [&](std::uint64_t, std::uint64_t count, std::uint64_t what, kif::Selector& first) {
             if (count != 1) return Error::kInvalidArgs;
             first = what == kHandOutLastDelegated ? last_delegated : kServerMemory;
             return Error::kNone;
           },
       .delegate =
           [&](std::uint64_t, std::uint64_t count, std::uint64_t, kif::Selector& first) {
             if (count != 1) return Error::kInvalidArgs;
             // Revocations free what the client delegated; selectors are reused.
             first = last_delegated = kFirstFree + next;
             next = (next + 1) % kSelectors;
             return Error::kNone;
           },
       .close = [](std::uint64_t) {}});
  require(server.error(), "service");
  for (;;) {
    const auto st = server.serve_one(1s);
    if (st == Status::kTerminated) return 0;
    if (st != Status::kOk && st != Status::kTimeout) return 1;
  }
}

cluster::ClusterSpec spanning_cluster(bool two_nodes, const std::string& file, bool quick) {
  const auto self = sibling_program("vdtu");
  const std::string setup = two_nodes ? "nodes" : "kernels";
  cluster::ClusterKernel server{{{self, "pe-bench", "spanning-server"}}};
  cluster::ClusterKernel client{
      {{self, "pe-bench", "spanning-client", file, quick ? "quick" : "full", setup}}};
  cluster::ClusterSpec spec;
  if (two_nodes) {
    spec.nodes = {{{server}}, {{client}}};
  } else {
    spec.nodes = {{{server, client}}};
  }
  spec.quiet = true;
  spec.timeout_seconds = 600;
  // The figures in docs/BENCHMARKS.md were taken with plain datagrams: they
  // measure the bridge and the kernels, not the cipher.
  spec.insecure_plain = true;
  return spec;
}

void run_setup(bool two_nodes, const std::string& file, bool quick) {
  const auto result = cluster::run_cluster(spanning_cluster(two_nodes, file, quick));
  if (result.nodes_failed == 0) return;
  std::string why;
  for (const auto& f : result.failures) why += "\n" + f;
  throw std::runtime_error("spanning benchmark cluster failed:" + why);
}

// Same-shape floors, counted from the design (ARCHITECTURE.md): each node is
// one event-loop thread, kernels talk through DTU channels on one node and
// kernel -> its node's loop -> UDP -> the other node's loop -> kernel across
// nodes. Parties, kernels: client 0, its kernel 1, the server's kernel 2,
// server 3. Nodes: client 0, its kernel 1, its node 2, the server's node 3,
// the server's kernel 4, server 5.
struct SpanningFloors {
  std::map<std::string, TokenPath> paths;  // floor name -> path
  std::map<std::string, std::string> of;   // figure -> floor name
};

// A chain revocation: the client asks its kernel, REVOKE crosses `depth`
// times (one capability each) and REVOKE_DONE as many times back.
TokenPath chain_floor(unsigned depth, bool two_nodes) {
  TokenPath path;
  path.name = fmt::format("floor_chain_{}_{}", depth, two_nodes ? "nodes" : "kernels");
  path.to(1);
  for (unsigned crossing = 0; crossing < 2 * depth; ++crossing) {
    const bool outward = crossing % 2 == 0;  // client's kernel -> server's kernel
    if (two_nodes) {
      path.to(outward ? 2 : 3).to(outward ? 3 : 2, true).to(outward ? 4 : 1);
    } else {
      path.to(outward ? 2 : 1);
    }
  }
  return path.to(0);
}

SpanningFloors spanning_floors() {
  SpanningFloors f;
  const auto add = [&](TokenPath path, std::initializer_list<std::string> figures) {
    for (const auto& figure : figures) f.of[figure] = path.name;
    f.paths.emplace(path.name, std::move(path));
  };
  add(there_and_back("floor_2_parties", 2),
      {"kernels_noop", "kernels_revoke_obtained", "kernels_memory_read_8B", "nodes_noop",
       "nodes_revoke_obtained"});
  add(there_and_back("floor_4_parties", 4), {"kernels_obtain", "kernels_delegate"});
  add(there_and_back("floor_3_parties", 3), {"kernels_revoke"});
  add(there_and_back("floor_6_parties_udp", 6, 2), {"nodes_obtain", "nodes_delegate"});
  add(there_and_back("floor_5_parties_udp", 5, 2), {"nodes_revoke"});
  add(there_and_back("floor_3_parties_2_udp", 3, 1), {"nodes_memory_read_8B"});
  for (unsigned depth : kChainDepths) {
    add(chain_floor(depth, false), {fmt::format("kernels_chain_revoke_{}", depth)});
    add(chain_floor(depth, true), {fmt::format("nodes_chain_revoke_{}", depth)});
  }
  return f;
}

}  // namespace

int run_spanning_role(const std::string& role, Dtu& dtu, const std::vector<std::string>& args) {
  if (role == "spanning-client") return spanning_client(dtu, args);
  if (role == "spanning-server") return spanning_server(dtu, args);
  return -1;
}

void run_spanning_suite(Reporter& reporter, const SuiteOptions& options) {
  const std::string suite = "spanning";
  const std::size_t iterations = options.quick ? 2'000 : 20'000;
  reporter.progress("the cache-line and UDP baselines");
  reporter.add(latency_result(suite, "baseline_cacheline_pingpong_rtt", cacheline_pingpong_ns(iterations)));
  reporter.add(
      latency_result(suite, "baseline_udp_busy_poll_rtt", udp_busy_poll_roundtrip_ns(iterations, 64)));
  const auto floors = spanning_floors();
  std::map<std::string, Result> floor_results;
  reporter.note(
      "floors: a token through the same parties in the same order (cache lines; UDP where nodes are "
      "crossed), each party waiting as vdtu's do (spin, yield, sleep)");
  for (const auto& [name, path] : floors.paths) {
    // Rounds of a long path take milliseconds: as many as the chains get.
    const bool long_path = path.hops() > 50;
    const std::size_t rounds = long_path ? (options.quick ? 3 : 50) : (options.quick ? 100 : 2'000);
    auto r = latency_result(suite, name, token_ring_ns(path, rounds, long_path ? 2 : rounds / 10));
    reporter.add(r);
    floor_results.emplace(name, std::move(r));
  }
  SampleDirectory dir;
  const auto kernels_file = dir.file("kernels");
  const auto nodes_file = dir.file("nodes");
  reporter.progress("two kernels on one node");
  run_setup(false, kernels_file, options.quick);
  reporter.progress("one kernel on each of two nodes");
  run_setup(true, nodes_file, options.quick);
  auto samples = read_samples(kernels_file);
  samples.merge(read_samples(nodes_file));
  reporter.note("kernels_*: two kernels on one node; nodes_*: one kernel on each of two nodes (UDP bridge)");
  reporter.note("times are request to reply as the client VPE sees them; noop = its own kernel");
  for (const char* setup : {"kernels", "nodes"}) {
    std::vector<std::string> names;
    for (const char* op : {"noop", "obtain", "delegate", "revoke", "revoke_obtained", "memory_read_8B"})
      names.push_back(fmt::format("{}_{}", setup, op));
    for (unsigned depth : kChainDepths) names.push_back(fmt::format("{}_chain_revoke_{}", setup, depth));
    for (const auto& name : names) {
      reporter.add(against(latency_result(suite, name, samples[name]), floor_results.at(floors.of.at(name))));
    }
  }
}

}  // namespace vdtu::bench
