// The vdtu command.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "demo.hpp"
#include "suites.hpp"

int main(int argc, char** argv) {
  CLI::App app{"vdtu: a virtual Data Transfer Unit and SemperOS capability kernels on Linux hosts"};
  app.require_subcommand(1);

  vdtu::cli::DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "Run the main demonstration and print 'N passed, M failed'");
  demo_cmd->add_option("--messages", demo.messages, "Messages to stream between two processes")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40U));

  std::string suite;
  bool json = false;
  vdtu::bench::SuiteOptions bench_options;
  auto* bench_cmd = app.add_subcommand("bench", "Run a benchmark suite with its baselines");
  bench_cmd->add_option("suite", suite, "Suite to run")->required()->check(CLI::IsMember({"channel"}));
  bench_cmd->add_flag("--json", json, "One JSON object per line instead of a table");
  bench_cmd->add_flag("--quick", bench_options.quick, "Few iterations (smoke test; figures are rough)");

  CLI11_PARSE(app, argc, argv);
  try {
    if (demo_cmd->parsed()) return vdtu::cli::run_demo(demo);
    if (bench_cmd->parsed()) {
      vdtu::bench::Reporter reporter(json);
      if (suite == "channel") vdtu::bench::run_channel_suite(reporter, bench_options);
      return 0;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "vdtu: {}\n", e.what());
    return 1;
  }
  return 0;
}
