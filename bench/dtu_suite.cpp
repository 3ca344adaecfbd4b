// `vdtu bench dtu`: the virtual DTU as PEs see it. A node runs in this
// process; the PEs are this same executable started as `vdtu pe-bench ROLE`.
// PEs write their samples to a file ("metric nanoseconds" per line).
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "baselines.hpp"
#include "channel/spin_then_sleep.hpp"
#include "node/node.hpp"
#include "sample_file.hpp"
#include "suites.hpp"
#include "token_ring.hpp"
#include "vdtu/dtu.hpp"

namespace vdtu::bench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kPayload = 64;
constexpr std::size_t kMemoryChunk = std::size_t{60} * 1024;
constexpr EpId kServerRecv = 0, kServerConfigRecv = 1;
constexpr EpId kClientReply = 1, kClientSend = 2, kClientMemory = 3, kClientConfigSend = 4,
               kClientConfigMemory = 5;

// A kernel configures endpoints between other work: this long (polling, so
// that the node keeps polling too) passes before each timed request, in
// which the node restocks its channels (channel_pool.hpp). Back to back,
// channel creation bounds the rate instead: config_and_invalidate_back_to_back
// times a configuration and the invalidation after it, without a pause.
constexpr auto kBetweenConfigurations = 50us;

void pause_for(std::chrono::nanoseconds how_long) {
  const auto until = std::chrono::steady_clock::now() + how_long;
  while (std::chrono::steady_clock::now() < until) detail::cpu_relax();
}

double elapsed_ns(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - since).count();
}

void require(Status st, const char* what) {
  if (st != Status::kOk) throw std::runtime_error(fmt::format("{}: {}", what, to_string(st)));
}

int kernel_role(Dtu& dtu, const std::vector<std::string>& a) {
  const auto client = static_cast<PeId>(std::stoul(a.at(0)));
  const auto server = static_cast<PeId>(std::stoul(a.at(1)));
  SampleWriter samples(a.at(2));
  const auto iterations = std::stoul(a.at(3));
  require(dtu.config_receive(server, kServerConfigRecv, {12, 8}), "config_receive");
  const SendConfig send{server, kServerConfigRecv, 0, 4, 64, kNoReplyEp};
  for (std::size_t i = 0; i < iterations; ++i) {
    pause_for(kBetweenConfigurations);
    auto t = std::chrono::steady_clock::now();
    require(dtu.config_send(client, kClientConfigSend, send), "config_send");
    samples.add("config_send_endpoint", elapsed_ns(t));
    pause_for(kBetweenConfigurations);
    t = std::chrono::steady_clock::now();
    require(dtu.config_memory(client, kClientConfigMemory, {kGlobalMemoryPe, 0, 4096, kMemRead, kThisNode}),
            "config_memory");
    samples.add("config_memory_endpoint", elapsed_ns(t));
    pause_for(kBetweenConfigurations);
    t = std::chrono::steady_clock::now();
    require(dtu.invalidate(client, kClientConfigSend), "invalidate");
    samples.add("invalidate_send_endpoint", elapsed_ns(t));
  }
  for (std::size_t i = 0; i < iterations; ++i) {
    const auto t = std::chrono::steady_clock::now();
    require(dtu.config_send(client, kClientConfigSend, send), "config_send");
    require(dtu.invalidate(client, kClientConfigSend), "invalidate");
    samples.add("config_and_invalidate_back_to_back", elapsed_ns(t));
  }
  // Last, the endpoints the client measures with: it starts once they exist.
  require(dtu.config_receive(server, kServerRecv, {14, 8}), "config_receive");
  require(dtu.config_receive(client, kClientReply, {10, 8}), "config_receive");
  require(dtu.config_memory(client, kClientMemory, {kGlobalMemoryPe, 0, 16 << 20, kMemReadWrite, kThisNode}),
          "config_memory");
  require(dtu.config_send(client, kClientSend, {server, kServerRecv, 7, 1, kPayload, kClientReply}),
          "config_send");
  return 0;
}

int server_role(Dtu& dtu, const std::vector<std::string>&) {
  require(dtu.wait_for_endpoint(kServerRecv, EndpointKind::kReceive, 60s), "wait");
  for (;;) {
    ReceivedMessage m;
    require(dtu.receive(kServerRecv, m, 60s), "receive");
    if (m.payload.empty()) return 0;  // the client is done
    require(dtu.reply(m, m.payload), "reply");
  }
}

int client_role(Dtu& dtu, const std::vector<std::string>& a) {
  SampleWriter samples(a.at(0));
  const auto iterations = std::stoul(a.at(1));
  require(dtu.wait_for_endpoint(kClientSend, EndpointKind::kSend, 60s), "wait");
  require(dtu.wait_for_endpoint(kClientMemory, EndpointKind::kMemory, 60s), "wait");
  std::array<std::byte, kPayload> payload{};
  for (std::size_t i = 0; i < iterations + iterations / 10; ++i) {
    const auto t = std::chrono::steady_clock::now();
    require(dtu.send(kClientSend, payload, i), "send");
    ReceivedMessage m;
    if (auto st = dtu.receive(kClientReply, m); st != Status::kOk) {
      fmt::print(stderr,
                 "vdtu bench: no reply in round {} (credits {}, forged replies {}, broken channels {})\n", i,
                 dtu.credits(kClientSend), dtu.stats().forged_replies_dropped, dtu.stats().broken_channels);
      require(st, "receive reply");
    }
    dtu.ack(m);
    if (i >= iterations / 10) samples.add("send_reply_roundtrip", elapsed_ns(t));
  }
  std::vector<std::byte> chunk(kMemoryChunk, std::byte{0x5a});
  std::array<std::byte, 8> word{};
  for (std::size_t i = 0; i < iterations / 10; ++i) {
    auto t = std::chrono::steady_clock::now();
    require(dtu.read(kClientMemory, 64 * i, word), "read");
    samples.add("memory_read_8B", elapsed_ns(t));
    t = std::chrono::steady_clock::now();
    require(dtu.write(kClientMemory, (i * kMemoryChunk) % (8 << 20), chunk), "write");
    samples.add("memory_write_60KiB", elapsed_ns(t));
    t = std::chrono::steady_clock::now();
    require(dtu.read(kClientMemory, (i * kMemoryChunk) % (8 << 20), chunk), "read");
    samples.add("memory_read_60KiB", elapsed_ns(t));
  }
  require(dtu.send(kClientSend, {}, 0, SendMode::kWait), "stop");
  return 0;
}

std::string self_path() {
  std::array<char, 4096> buffer{};
  const auto n = ::readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
  if (n <= 0) throw std::runtime_error("cannot find this executable");
  return {buffer.data(), static_cast<std::size_t>(n)};
}

}  // namespace

int run_caps_role(const std::string& role, Dtu& dtu, const std::vector<std::string>& args);
int run_spanning_role(const std::string& role, Dtu& dtu, const std::vector<std::string>& args);
int run_scale_role(const std::string& role, Dtu& dtu, const std::vector<std::string>& args);

int run_pe_role(const std::string& role, const std::vector<std::string>& args) {
  auto dtu = Dtu::from_environment();
  if (role.rfind("caps-", 0) == 0) return run_caps_role(role, *dtu, args);
  if (role.rfind("spanning-", 0) == 0) return run_spanning_role(role, *dtu, args);
  if (role.rfind("scale-", 0) == 0) return run_scale_role(role, *dtu, args);
  if (role == "kernel") return kernel_role(*dtu, args);
  if (role == "server") return server_role(*dtu, args);
  if (role == "client") return client_role(*dtu, args);
  throw std::runtime_error("unknown benchmark PE role " + role);
}

void run_dtu_suite(Reporter& reporter, const SuiteOptions& options) {
  const std::size_t iterations = options.quick ? 2'000 : 50'000;
  const std::size_t config_iterations = options.quick ? 200 : 3'000;
  const std::string suite = "dtu";
  reporter.progress("the cache-line baseline");
  reporter.add(latency_result(suite, "baseline_cacheline_pingpong_rtt", cacheline_pingpong_ns(iterations)));
  // Client and server (or client and the node's loop, for memory): two
  // parties, unpinned, waiting as vdtu waits.
  const auto floor =
      latency_result(suite, "floor_2_parties",
                     token_ring_ns(there_and_back("floor_2_parties", 2), iterations, iterations / 10));
  reporter.add(floor);

  SampleDirectory dir;
  const std::string client_file = dir.file("client");
  const std::string kernel_file = dir.file("kernel");
  reporter.progress("send+reply, endpoint configuration and memory in PE processes");
  {
    dtu::Node node(dtu::NodeConfig{});
    const auto exe = self_path();
    const PeId client =
        node.launch({exe, {"pe-bench", "client", client_file, std::to_string(iterations)}, false});
    const PeId server = node.launch({exe, {"pe-bench", "server"}, false});
    const PeId kernel = node.launch({exe,
                                     {"pe-bench", "kernel", std::to_string(client), std::to_string(server),
                                      kernel_file, std::to_string(config_iterations)},
                                     true});
    if (!node.wait_all_exited(std::chrono::minutes(5)))
      throw std::runtime_error("benchmark PEs did not finish");
    for (PeId pe : {client, server, kernel}) {
      if (node.exit_code(pe) != 0) throw std::runtime_error(fmt::format("benchmark PE {} failed", pe));
    }
  }
  auto samples = read_samples(kernel_file);
  samples.merge(read_samples(client_file));
  reporter.note("PEs are processes; round trips carry 64-byte payloads; memory goes through the node");
  for (const char* name : {"send_reply_roundtrip", "memory_read_8B"}) {
    reporter.add(against(latency_result(suite, name, samples[name]), floor));
  }
  for (const char* name : {"config_send_endpoint", "config_memory_endpoint", "invalidate_send_endpoint",
                           "config_and_invalidate_back_to_back"}) {
    reporter.add(latency_result(suite, name, samples[name]));
  }
  for (const char* name : {"memory_write_60KiB", "memory_read_60KiB"}) {
    std::vector<double> rates;
    for (double ns : samples[name]) rates.push_back(static_cast<double>(kMemoryChunk) / ns * 1e9);
    reporter.add(rate_result(suite, std::string(name) + "_bandwidth", "GB/s", 1e-9, std::move(rates)));
  }
}

}  // namespace vdtu::bench
