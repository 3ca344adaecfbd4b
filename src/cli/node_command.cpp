#include "node_command.hpp"

#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <vector>

#include "cluster/cluster_launch.hpp"
#include "common/stop_signals.hpp"
#include "node/node.hpp"
#include "node_file.hpp"

namespace vdtu::cli {
namespace {

using Clock = std::chrono::steady_clock;
// The node's wait is on a condition variable; this often it looks for a
// stop signal in between.
constexpr auto kSignalCheck = std::chrono::milliseconds(100);
constexpr std::size_t kShownArgsChars = 48;

enum class Ending { kAllExited, kTimedOut, kStopped };

Ending wait_for_end(dtu::Node& node, StopSignals& signals, std::optional<Clock::time_point> deadline) {
  for (;;) {
    if (signals.received() != 0) return Ending::kStopped;
    auto slice = std::chrono::duration_cast<std::chrono::milliseconds>(kSignalCheck);
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0) return Ending::kTimedOut;
      slice = std::min(slice, left);
    }
    if (node.wait_all_exited(slice)) return Ending::kAllExited;
  }
}

// "path arg arg...", the arguments cut short: enough to tell PEs apart.
std::string describe(const dtu::PeProgram& program) {
  auto args = fmt::format("{}", fmt::join(program.args, " "));
  if (args.size() > kShownArgsChars) args = args.substr(0, kShownArgsChars) + "...";
  return args.empty() ? program.path : program.path + " " + args;
}

struct Launched {
  PeId pe;
  const dtu::PeProgram* program;
};

// The PEs still running: those we started, then those kernels started.
std::vector<std::string> still_running(const dtu::Node& node, const dtu::NodeConfig& config,
                                       const std::vector<Launched>& started) {
  std::vector<std::string> out;
  std::vector<bool> ours(config.pe_count, false);
  for (const auto& l : started) {
    ours[l.pe - config.first_pe] = true;
    if (!node.exit_code(l.pe)) out.push_back(fmt::format("PE {} ({})", l.pe, describe(*l.program)));
  }
  for (std::uint32_t i = 0; i < config.pe_count; ++i) {
    const auto pe = static_cast<PeId>(config.first_pe + i);
    if (!ours[i] && node.pid_of(pe) > 0 && !node.exit_code(pe))
      out.push_back(fmt::format("PE {} (started by a kernel)", pe));
  }
  return out;
}

void print_stats(const dtu::NodeStats& stats, const dtu::NodeConfig& config) {
  const auto id = config.node_id;
  fmt::print(
      "node {}: {} control requests ({} denied), {} memory requests ({} rejected), {} channels created\n", id,
      stats.control_requests, stats.control_denied, stats.memory_requests, stats.memory_rejected,
      stats.channels_created);
  if (config.peers.empty()) return;
  fmt::print(
      "node {}: bridge: {} messages forwarded, {} datagrams sent, {} received, {} rejected, "
      "{} retransmitted, {} duplicates dropped, {} peers lost\n",
      id, stats.remote_messages, stats.datagrams_sent, stats.datagrams_received, stats.datagrams_rejected,
      stats.retransmissions, stats.duplicates_dropped, stats.peers_lost);
  if (config.faults.any()) {
    fmt::print("node {}: bridge: faults injected: {} dropped, {} duplicated, {} reordered\n", id,
               stats.faults.dropped, stats.faults.duplicated, stats.faults.reordered);
  }
  if (config.cluster_key) {
    fmt::print("node {}: bridge: sealed (ChaCha20-Poly1305): {} failed authentication, {} replayed\n", id,
               stats.datagrams_forged, stats.datagrams_replayed);
  } else {
    fmt::print("node {}: bridge: plain datagrams (insecure_plain): not authenticated\n", id);
  }
}

}  // namespace

int run_node(const NodeOptions& options) {
  auto file = parse_node_file(options.config_path);
  const auto id = file.config.node_id;
  file.config.stats_socket = options.stats_socket;
  // Whole lines, and each as it happens: a cluster keeps them in a log that
  // must hold everything up to a kill.
  (void)std::setvbuf(stdout, nullptr, _IOLBF, 0);
  StopSignals signals;  // before the node's threads, which inherit the blocked mask
  const auto deadline =
      options.timeout_seconds > 0
          ? std::optional(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(options.timeout_seconds)))
          : std::nullopt;
  std::optional<dtu::Node> node(std::in_place, file.config);
  if (!options.stats_socket.empty()) fmt::print("node {}: stats socket {}\n", id, options.stats_socket);
  std::vector<Launched> started;
  for (const auto& program : file.programs) {
    if (signals.received() != 0) break;
    started.push_back({node->launch(program), &program});
    fmt::print("node {}: PE {} runs {}{}\n", id, started.back().pe, program.path,
               program.privileged ? " (privileged)" : "");
  }
  auto ending = wait_for_end(*node, signals, deadline);
  const auto running = still_running(*node, file.config, started);
  if (ending == Ending::kTimedOut && running.empty()) ending = Ending::kAllExited;  // the last ended just now
  int failed = 0;
  for (const auto& l : started) {
    const auto code = node->exit_code(l.pe);
    fmt::print("node {}: PE {} ({}) {}\n", id, l.pe, l.program->path,
               code ? fmt::format("exited with {}", *code) : std::string("still running: killed"));
    failed += (!code || *code != 0) ? 1 : 0;
  }
  print_stats(node->stats(), file.config);
  node.reset();  // kills and reaps the PEs still running, lets the bridge say its last words
  const auto what = running.empty() ? std::string("no PE was running")
                                    : fmt::format("killed and reaped {}", fmt::join(running, ", "));
  if (ending == Ending::kStopped) {
    const int signal = signals.received();
    throw StoppedBySignal(signal, fmt::format("node {}: stopped by {}: {}", id, signal_name(signal), what));
  }
  if (ending == Ending::kTimedOut) {
    (void)std::fflush(stdout);
    fmt::print(stderr, "node {}: timeout ({} s) with PEs still running: {}\n", id, options.timeout_seconds,
               what);
    return cluster::kNodeTimedOutExit;
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace vdtu::cli
