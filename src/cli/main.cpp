// The vdtu command.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <string_view>

#include "cluster_command.hpp"
#include "common/log.hpp"
#include "common/stop_signals.hpp"
#include "demo.hpp"
#include "node_command.hpp"
#include "observe_command.hpp"
#include "suites.hpp"
#include "switch_command.hpp"
#include "vm_command.hpp"

namespace {

// A finite number from min to max (CLI::Range lets "nan" through).
CLI::Validator finite_range(double min, double max) {
  return {[min, max](std::string& text) -> std::string {
            double value = 0;
            const auto* end = text.data() + text.size();
            const auto [last, error] = std::from_chars(text.data(), end, value);
            if (error != std::errc{} || last != end) return fmt::format("{} is not a number", text);
            if (!std::isfinite(value) || value < min || value > max)
              return fmt::format("{} is out of range ({} to {})", text, min, max);
            return {};
          },
          fmt::format("NUMBER in [{} - {}]", min, max)};
}

// Every line of a message on stderr, each starting with "vdtu: ".
void print_error(std::string_view message) {
  for (;;) {
    const auto end = message.find('\n');
    fmt::print(stderr, "vdtu: {}\n", message.substr(0, end));
    if (end == std::string_view::npos) return;
    message.remove_prefix(end + 1);
  }
}

int run(int argc, char** argv) {
  CLI::App app{"vdtu: a virtual Data Transfer Unit and SemperOS capability kernels on Linux hosts"};
  app.require_subcommand(1);
  // Accepted before or after the subcommand (`vdtu node --log-level debug`).
  app.fallthrough();
  std::string log_level;  // not given: $VDTU_LOG_LEVEL (a node started by a cluster), else info
  auto* log_level_opt =
      app.add_option(
             "--log-level", log_level,
             fmt::format("Event log level on stderr: {} (nodes and PEs started by this command inherit "
                         "it)",
                         vdtu::kLogLevels))
          ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  vdtu::cli::DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "Run the main demonstration and print 'N passed, M failed'");
  demo_cmd->add_option("--messages", demo.messages, "Messages to stream between two processes")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40U));

  vdtu::cli::NodeOptions node;
  auto* node_cmd = app.add_subcommand("node", "Run one node and the PEs its configuration file names");
  node_cmd->add_option("--config", node.config_path, "TOML file: [node] settings and [[pe]] programs")
      ->required()
      ->check(CLI::ExistingFile);
  node_cmd
      ->add_option("--timeout", node.timeout_seconds,
                   "Seconds after which PEs still running are killed and named (default 0: no limit)")
      ->check(finite_range(0, vdtu::cluster::kMaxTimeoutSeconds));
  node_cmd->add_option("--stats-socket", node.stats_socket,
                       "Serve `vdtu stat` and `vdtu trace` on this Unix socket (0600, the node's user only)");

  vdtu::cli::StatOptions stat;
  auto* stat_cmd =
      app.add_subcommand("stat", "Show a running node's PEs, endpoints, channels, counters and links");
  stat_cmd->add_option("--socket", stat.socket_path, "The node's stats socket (`vdtu node --stats-socket`)")
      ->required();
  stat_cmd->add_flag("--json", stat.json, "One JSON object (per snapshot) instead of text");
  stat_cmd
      ->add_option("--watch", stat.watch_seconds,
                   "Repeat every this many seconds until interrupted, like top")
      ->expected(0, 1)
      ->default_str("1")
      ->check(finite_range(0.05, 3600));

  vdtu::cli::TraceOptions trace;
  auto* trace_cmd = app.add_subcommand("trace",
                                       "Capture a running node's DTU messages into a pcapng file (Wireshark: "
                                       "tools/wireshark/vdtu.lua)");
  trace_cmd->add_option("--socket", trace.socket_path, "The node's stats socket")->required();
  trace_cmd->add_option("--output,-w", trace.output, "The pcapng file to write")->required();
  trace_cmd
      ->add_option("--duration", trace.duration_seconds, "Seconds to capture (default: until interrupted)")
      ->check(finite_range(0.001, vdtu::cluster::kMaxTimeoutSeconds));
  trace_cmd->add_option("--snaplen", trace.snaplen, "Payload bytes kept per message (0-1024, default 64)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1024}));

  vdtu::cli::ClusterOptions cluster;
  auto* cluster_cmd = app.add_subcommand(
      "cluster", "Run several nodes (each a `vdtu node` process) joined by UDP: loopback, or --netns");
  auto* config_opt = cluster_cmd
                         ->add_option("--config", cluster.config_path,
                                      "TOML file: [[node]] with [[node.kernel]] and their vpes")
                         ->check(CLI::ExistingFile);
  cluster_cmd->add_option("--nodes", cluster.nodes, "Without --config: nodes of the echo workload")
      ->check(CLI::Range(1U, static_cast<unsigned>(vdtu::cluster::kMaxNodes)))
      ->excludes(config_opt);
  cluster_cmd
      ->add_option("--kernels-per-node", cluster.kernels_per_node, "Without --config: kernels per node")
      ->check(CLI::Range(1U, 8U))
      ->excludes(config_opt);
  auto* netns_opt = cluster_cmd->add_flag(
      "--netns", cluster.netns,
      "Each node in its own network namespace, joined by veth pairs and a bridge (root)");
  cluster_cmd
      ->add_flag("--vms", cluster.vms,
                 "Each node in a QEMU guest, the guests on vhost-user ports of a `vdtu switch` it starts")
      ->excludes(netns_opt);
  cluster_cmd
      ->add_flag("--vms-udp", cluster.vms_udp,
                 "Each of two nodes in a QEMU guest, the guests joined by a loopback UDP pair (no switch)")
      ->excludes(netns_opt);
  cluster_cmd->add_flag(
      "--insecure-plain-datagrams", cluster.insecure_plain,
      "Do not seal bridge datagrams (by default they are, with a fresh random cluster key): any host that "
      "reaches a node's port can then act as a node");
  bool encrypt = false;  // sealing was optional once; accepted so that old scripts keep working
  cluster_cmd->add_flag("--encrypt", encrypt, "Obsolete: sealing is the default")->group("");
  double loss = 0;
  double duplicate = 0;
  double reorder = 0;
  double cluster_timeout = 0;
  auto* loss_opt =
      cluster_cmd->add_option("--loss", loss, "Drop this share of every bridge's datagrams (0-1)")
          ->check(finite_range(0, 1));
  auto* duplicate_opt = cluster_cmd->add_option("--duplicate", duplicate, "Send this share twice (0-1)")
                            ->check(finite_range(0, 1));
  auto* reorder_opt =
      cluster_cmd->add_option("--reorder", reorder, "Hold back this share behind the next (0-1)")
          ->check(finite_range(0, 1));
  auto* timeout_opt =
      cluster_cmd
          ->add_option(
              "--timeout", cluster_timeout,
              "Seconds after which nodes kill the PEs still running, name them and fail (default: the "
              "file's timeout, else 120)")
          ->check(finite_range(0.001, vdtu::cluster::kMaxTimeoutSeconds));

  vdtu::cli::SwitchOptions sw;
  auto* switch_cmd = app.add_subcommand(
      "switch", "Run an Ethernet switch: shared-memory ports for local processes, AF_PACKET uplinks (root)");
  switch_cmd
      ->add_option("--config", sw.config_path,
                   "TOML file: [switch], [[port]], [[uplink]], [[vhost_user]], [[static]]")
      ->check(CLI::ExistingFile);
  switch_cmd->add_option("--socket", sw.socket_path, "Unix socket where clients ask for ports");
  switch_cmd->add_option("--uplink", sw.uplinks, "A port on this host interface (repeatable)");
  switch_cmd->add_option("--port", sw.ports, "A named shared-memory port NAME or NAME=MAC (repeatable)");
  switch_cmd->add_option("--vhost-user", sw.vhost_user,
                         "A vhost-user port (virtio-net for QEMU) NAME=PATH[,client] (repeatable)");
  switch_cmd->add_option("--mac-table-size", sw.mac_table_size, "MAC table entries (default 4096)");
  switch_cmd->add_option("--aging", sw.aging_seconds,
                         "Forget addresses not seen for this many seconds (300)");
  switch_cmd->add_option("--mtu", sw.mtu, "MTU of shared-memory ports (1500)");
  switch_cmd->add_option("--ring-slots", sw.ring_slots, "Frames per ring and direction (512)");
  switch_cmd->add_option("--max-ports", sw.max_ports, "Ports at most (64)");
  switch_cmd->add_flag("--named-only", sw.named_only, "Refuse clients that ask for no named port");
  vdtu::cli::SwitchStatOptions sw_stat;
  auto* switch_stat_cmd = switch_cmd->add_subcommand("stat", "Print a running switch's counters");
  switch_stat_cmd->add_option("--socket", sw_stat.socket_path, "The switch's Unix socket")->required();
  switch_stat_cmd->add_flag("--json", sw_stat.json, "One JSON object instead of a table");

  vdtu::cli::VmOptions vm;
  auto* vm_cmd = app.add_subcommand(
      "vm", "Boot a QEMU guest (Debian's kernel, busybox) on a switch port and run a command in it");
  auto* vhost_opt = vm_cmd->add_option(
      "--vhost-user", vm.vhost_user, "The NIC on this vhost-user socket of a `vdtu switch` (QEMU connects)");
  vm_cmd->add_option("--udp", vm.udp, "Instead: the NIC on loopback UDP, LOCAL:REMOTE ports (no switch)")
      ->excludes(vhost_opt);
  vm_cmd->add_option("--mac", vm.mac, "The NIC's MAC address (52:54:00:00:00:01)");
  vm_cmd->add_option("--ip", vm.ip, "eth0's address, ADDR/LEN (e.g. 10.0.0.1/24)");
  vm_cmd->add_option("--memory", vm.memory_mib, "Guest memory in MiB (256)")->check(CLI::Range(64U, 16384U));
  vm_cmd->add_option("--timeout", vm.timeout_seconds, "Seconds until the guest is killed (120); exit 124")
      ->check(finite_range(1, vdtu::cluster::kMaxTimeoutSeconds));
  vm_cmd->add_option("--console", vm.console_path, "Also write the serial console to this file");
  vm_cmd->add_flag("--quiet", vm.quiet, "Do not copy the console to stdout");
  vm_cmd->add_option("--with", vm.programs,
                     "Copy this host program into the guest, same path, with its libraries");
  vm_cmd->add_option("--file", vm.files, "GUEST_PATH=HOST_FILE: a file for this run");
  vm_cmd->add_flag("--image", vm.image_only, "Only build (or find) the image and print its paths");
  vm_cmd->add_option("command", vm.command, "The guest's command (busybox sh), after --");

  std::string suite;
  bool json = false;
  vdtu::bench::SuiteOptions bench_options;
  auto* bench_cmd = app.add_subcommand("bench", "Run a benchmark suite with its baselines");
  bench_cmd->add_option("suite", suite, "Suite to run")
      ->required()
      ->check(CLI::IsMember({"channel", "dtu", "caps", "spanning", "session", "switch", "vm", "scale"}));
  bench_cmd->add_flag("--json", json, "One JSON object per line instead of a table");
  bench_cmd->add_flag("--quick", bench_options.quick, "Few iterations (smoke test; figures are rough)");
  bool quantiles = false;
  bench_cmd->add_flag(
      "--quantiles", quantiles,
      "With --json: latency results also carry \"quantiles\", every percentile (for CDF plots)");

  std::string pe_role;
  std::vector<std::string> pe_args;
  auto* pe_cmd = app.add_subcommand("pe-bench", "Internal: a benchmark PE, started by `vdtu bench dtu`");
  pe_cmd->group("");  // hidden from --help
  pe_cmd->add_option("role", pe_role)->required();
  pe_cmd->add_option("args", pe_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(e.what());  // one line, without CLI11's "Run with --help" second one
    return e.get_exit_code();
  }
  try {
    // Exported for the processes we start: before any thread.
    if (log_level_opt->count() > 0) {
      vdtu::set_log_level(log_level);
    } else {
      vdtu::set_log_level_from_environment();
    }
    if (demo_cmd->parsed()) return vdtu::cli::run_demo(demo);
    if (node_cmd->parsed()) return vdtu::cli::run_node(node);
    if (stat_cmd->parsed()) {
      if (stat_cmd->get_option("--watch")->count() > 0 && stat.watch_seconds <= 0) stat.watch_seconds = 1;
      return vdtu::cli::run_stat(stat);
    }
    if (trace_cmd->parsed()) return vdtu::cli::run_trace(trace);
    if (cluster_cmd->parsed()) {
      if (encrypt && cluster.insecure_plain)
        throw std::invalid_argument("--encrypt contradicts --insecure-plain-datagrams");
      if (encrypt)
        fmt::print(stderr, "vdtu: note: --encrypt is obsolete: every cluster is sealed by default\n");
      if (loss_opt->count() > 0) cluster.loss = loss;
      if (duplicate_opt->count() > 0) cluster.duplicate = duplicate;
      if (reorder_opt->count() > 0) cluster.reorder = reorder;
      if (timeout_opt->count() > 0) cluster.timeout_seconds = cluster_timeout;
      return vdtu::cli::run_cluster_command(cluster);
    }
    if (pe_cmd->parsed()) return vdtu::bench::run_pe_role(pe_role, pe_args);
    if (switch_stat_cmd->parsed()) return vdtu::cli::run_switch_stat(sw_stat);
    if (switch_cmd->parsed()) return vdtu::cli::run_switch(sw);
    if (vm_cmd->parsed()) return vdtu::cli::run_vm(vm);
    if (bench_cmd->parsed()) {
      vdtu::bench::Reporter reporter(json, quantiles);
      if (suite == "channel") vdtu::bench::run_channel_suite(reporter, bench_options);
      if (suite == "dtu") vdtu::bench::run_dtu_suite(reporter, bench_options);
      if (suite == "caps") vdtu::bench::run_caps_suite(reporter, bench_options);
      if (suite == "spanning") vdtu::bench::run_spanning_suite(reporter, bench_options);
      if (suite == "scale") vdtu::bench::run_scale_suite(reporter, bench_options);
      if (suite == "session") vdtu::bench::run_session_suite(reporter, bench_options);
      if (suite == "switch") vdtu::bench::run_switch_suite(reporter, bench_options);
      if (suite == "vm") vdtu::bench::run_vm_suite(reporter, bench_options);
      return 0;
    }
  } catch (const vdtu::StoppedBySignal& e) {  // what it stopped and removed
    (void)std::fflush(stdout);
    fmt::print(stderr, "{}\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    (void)std::fflush(stdout);
    print_error(e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // nothing may escape main
    print_error(e.what());
    return 1;
  }
}
