// The vdtu command.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "cluster_command.hpp"
#include "demo.hpp"
#include "node_command.hpp"
#include "suites.hpp"
#include "switch_command.hpp"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"vdtu: a virtual Data Transfer Unit and SemperOS capability kernels on Linux hosts"};
  app.require_subcommand(1);

  vdtu::cli::DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "Run the main demonstration and print 'N passed, M failed'");
  demo_cmd->add_option("--messages", demo.messages, "Messages to stream between two processes")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40U));

  vdtu::cli::NodeOptions node;
  auto* node_cmd = app.add_subcommand("node", "Run one node and the PEs its configuration file names");
  node_cmd->add_option("--config", node.config_path, "TOML file: [node] settings and [[pe]] programs")
      ->required()
      ->check(CLI::ExistingFile);
  node_cmd->add_option("--timeout", node.timeout_seconds, "Kill the PEs after this many seconds (0: never)")
      ->check(CLI::NonNegativeNumber);

  vdtu::cli::ClusterOptions cluster;
  auto* cluster_cmd = app.add_subcommand(
      "cluster", "Run several nodes (each a `vdtu node` process) joined by UDP: loopback, or --netns");
  cluster_cmd
      ->add_option("--config", cluster.config_path, "TOML file: [[node]] with [[node.kernel]] and their vpes")
      ->check(CLI::ExistingFile);
  cluster_cmd->add_option("--nodes", cluster.nodes, "Without --config: nodes of the echo workload")
      ->check(CLI::Range(1U, 64U));
  cluster_cmd
      ->add_option("--kernels-per-node", cluster.kernels_per_node, "Without --config: kernels per node")
      ->check(CLI::Range(1U, 8U));
  cluster_cmd->add_flag("--netns", cluster.netns,
                        "Each node in its own network namespace, joined by veth pairs and a bridge (root)");
  cluster_cmd->add_flag("--encrypt", cluster.encrypt,
                        "Seal every bridge datagram (ChaCha20-Poly1305) with a fresh random cluster key");
  cluster_cmd->add_option("--loss", cluster.loss, "Drop this share of every bridge's datagrams (0-1)")
      ->check(CLI::Range(0.0, 1.0));
  cluster_cmd->add_option("--duplicate", cluster.duplicate, "Send this share twice (0-1)")
      ->check(CLI::Range(0.0, 1.0));
  cluster_cmd->add_option("--reorder", cluster.reorder, "Hold back this share behind the next (0-1)")
      ->check(CLI::Range(0.0, 1.0));
  cluster_cmd
      ->add_option("--timeout", cluster.timeout_seconds, "Without --config: kill after this many seconds")
      ->check(CLI::PositiveNumber);

  vdtu::cli::SwitchOptions sw;
  auto* switch_cmd = app.add_subcommand(
      "switch", "Run an Ethernet switch: shared-memory ports for local processes, AF_PACKET uplinks (root)");
  switch_cmd->add_option("--config", sw.config_path, "TOML file: [switch], [[port]], [[uplink]], [[static]]")
      ->check(CLI::ExistingFile);
  switch_cmd->add_option("--socket", sw.socket_path, "Unix socket where clients ask for ports");
  switch_cmd->add_option("--uplink", sw.uplinks, "A port on this host interface (repeatable)");
  switch_cmd->add_option("--port", sw.ports, "A named shared-memory port NAME or NAME=MAC (repeatable)");
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

  std::string suite;
  bool json = false;
  vdtu::bench::SuiteOptions bench_options;
  auto* bench_cmd = app.add_subcommand("bench", "Run a benchmark suite with its baselines");
  bench_cmd->add_option("suite", suite, "Suite to run")
      ->required()
      ->check(CLI::IsMember({"channel", "dtu", "caps", "spanning", "switch"}));
  bench_cmd->add_flag("--json", json, "One JSON object per line instead of a table");
  bench_cmd->add_flag("--quick", bench_options.quick, "Few iterations (smoke test; figures are rough)");

  std::string pe_role;
  std::vector<std::string> pe_args;
  auto* pe_cmd = app.add_subcommand("pe-bench", "Internal: a benchmark PE, started by `vdtu bench dtu`");
  pe_cmd->group("");  // hidden from --help
  pe_cmd->add_option("role", pe_role)->required();
  pe_cmd->add_option("args", pe_args);

  CLI11_PARSE(app, argc, argv);
  try {
    if (demo_cmd->parsed()) return vdtu::cli::run_demo(demo);
    if (node_cmd->parsed()) return vdtu::cli::run_node(node);
    if (cluster_cmd->parsed()) return vdtu::cli::run_cluster_command(cluster);
    if (pe_cmd->parsed()) return vdtu::bench::run_pe_role(pe_role, pe_args);
    if (switch_stat_cmd->parsed()) return vdtu::cli::run_switch_stat(sw_stat);
    if (switch_cmd->parsed()) return vdtu::cli::run_switch(sw);
    if (bench_cmd->parsed()) {
      vdtu::bench::Reporter reporter(json);
      if (suite == "channel") vdtu::bench::run_channel_suite(reporter, bench_options);
      if (suite == "dtu") vdtu::bench::run_dtu_suite(reporter, bench_options);
      if (suite == "caps") vdtu::bench::run_caps_suite(reporter, bench_options);
      if (suite == "spanning") vdtu::bench::run_spanning_suite(reporter, bench_options);
      if (suite == "switch") vdtu::bench::run_switch_suite(reporter, bench_options);
      return 0;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "vdtu: {}\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // nothing may escape main
    fmt::print(stderr, "vdtu: {}\n", e.what());
    return 1;
  }
}
