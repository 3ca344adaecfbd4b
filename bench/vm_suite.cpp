// `vdtu bench vm`: two QEMU guests (TCG) through vdtu switch's vhost-user
// ports: ping round trips and iperf3 TCP and UDP throughput, and in the same
// run the same between two guests joined directly by QEMU's UDP socket
// netdev (no switch) as the baseline. TCG sets these figures: they are for
// the record, not a measure of the switch.
#include <fmt/core.h>

#include <charconv>
#include <sstream>
#include <string>
#include <vector>

#include "suites.hpp"
#include "vm/guest_image.hpp"
#include "vm/guest_lan.hpp"

namespace vdtu::bench {
namespace {

constexpr double kGuestTimeoutSeconds = 300;

// The number after `key` in `line` ("time=0.81 ms" -> 0.81), if any.
std::optional<double> number_after(const std::string& line, const std::string& key) {
  const auto at = line.find(key);
  if (at == std::string::npos) return std::nullopt;
  const char* first = line.data() + at + key.size();
  while (*first == ' ') ++first;
  double value = 0;
  const auto [last, error] = std::from_chars(first, line.data() + line.size(), value);
  if (error != std::errc{} || last == first) return std::nullopt;
  return value;
}

struct Figures {
  std::vector<double> rtt_ns;
  std::vector<double> tcp_bps;  // per one-second interval
  std::vector<double> udp_bps;  // the receiver's summary
};

Figures parse(const std::string& console) {
  Figures f;
  std::istringstream lines(console);
  bool udp = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("UDP-TEST") != std::string::npos) udp = true;
    if (auto ms = number_after(line, "time="); ms && line.find("bytes from") != std::string::npos)
      f.rtt_ns.push_back(*ms * 1e6);
    const auto mbit = number_after(line, "MBytes");
    if (!mbit || line.find("Mbits/sec") == std::string::npos) continue;
    const double bps = *mbit * 1e6;
    const bool summary =
        line.find("sender") != std::string::npos || line.find("receiver") != std::string::npos;
    if (!udp && !summary) f.tcp_bps.push_back(bps);
    if (udp && line.find("receiver") != std::string::npos) f.udp_bps.push_back(bps);
  }
  return f;
}

Figures run(vm::GuestLink link, const vm::GuestImage& image, bool quick) {
  const int pings = quick ? 5 : 30;
  const int seconds = quick ? 1 : 5;
  const std::string reach =
      "n=0; until ping -c 1 -W 1 {0} >/dev/null; do n=$((n+1)); [ $n -lt 150 ] || exit 9; done\n";
  const std::string retry = "n=0; until {1}; do n=$((n+1)); [ $n -lt 20 ] || exit {2}; sleep 1; done\n";
  std::vector<vm::GuestSpec> guests(2);
  for (unsigned n = 0; n < 2; ++n) {
    guests[n].name = fmt::format("guest {}", n);
    guests[n].mac = fmt::format("52:54:00:00:00:{:02x}", n + 1);
    guests[n].address = fmt::format("10.0.0.{}/24", n + 1);
  }
  guests[1].command = fmt::format(fmt::runtime(reach), "10.0.0.1") + "iperf3 -s -1 && iperf3 -s -1\n";
  guests[0].command =
      fmt::format(fmt::runtime(reach), "10.0.0.2") +
      fmt::format("ping -c {} -i 0.2 10.0.0.2 || exit 1\n", pings) +
      fmt::format(fmt::runtime(retry), "", fmt::format("iperf3 -f m -c 10.0.0.2 -t {}", seconds), 2) +
      "echo UDP-TEST\nsleep 1\n" +
      fmt::format(fmt::runtime(retry), "", fmt::format("iperf3 -f m -c 10.0.0.2 -u -b 0 -t {}", seconds), 3);
  const auto outcomes = vm::run_guests_on(link, guests, image, kGuestTimeoutSeconds);
  for (const auto& o : outcomes) {
    if (o.exit_status != 0)
      throw std::runtime_error(fmt::format("{}: {}\n{}", o.name, o.description, o.console));
  }
  return parse(outcomes[0].console);
}

void report(Reporter& reporter, const std::string& prefix, const Figures& f) {
  reporter.add(latency_result("vm", prefix + "_ping_rtt", f.rtt_ns));
  reporter.add(rate_result("vm", prefix + "_iperf3_tcp", "Gbit/s", 1e-9, f.tcp_bps));
  reporter.add(rate_result("vm", prefix + "_iperf3_udp", "Gbit/s", 1e-9, f.udp_bps));
}

}  // namespace

void run_vm_suite(Reporter& reporter, const SuiteOptions& options) {
  const auto image = vm::build_guest_image({});
  reporter.note("two TCG guests (1 vCPU, 256 MiB each), guest 0 pings and runs iperf3 against guest 1");
  report(reporter, "switch_vhost", run(vm::GuestLink::vhost_user_switch, image, options.quick));
  reporter.note("baseline: the same two guests joined by QEMU's UDP socket netdev (no switch)");
  report(reporter, "qemu_udp", run(vm::GuestLink::udp_pair, image, options.quick));
}

}  // namespace vdtu::bench
