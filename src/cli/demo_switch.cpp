// Demo checks for the virtual network: `vdtu switch` as its own process,
// clients as processes on shared-memory ports, lwIP on a port, and (as root)
// an AF_PACKET uplink to a network namespace.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "cluster/child_process.hpp"
#include "common/sibling_program.hpp"
#include "demo.hpp"
#include "net/probe/linux_probes.hpp"
#include "net/probe/probe_host.hpp"
#include "net/probe/veth_namespace.hpp"
#include "vdtu/net.hpp"

namespace vdtu::cli {
namespace {

using namespace std::chrono_literals;
using net::probe::ipv4;
using net::probe::ProbeHost;

// A program in the background, its output in a log file; SIGTERM, then
// SIGKILL, when the object goes.
class Background {
 public:
  Background(std::vector<std::string> words, std::string log)
      : log_(std::move(log)), child_(std::move(words), options(log_)) {}
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  ~Background() {
    child_.signal(SIGTERM);
    for (int i = 0; i < 500; ++i) {
      if (child_.try_wait()) return;
      std::this_thread::sleep_for(20ms);
    }
  }  // ~ChildProcess kills and reaps what still runs

  [[nodiscard]] bool wait_for(const std::string& needle, std::chrono::milliseconds limit) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(log_);
      std::stringstream text;
      text << in.rdbuf();
      if (text.str().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

 private:
  static cluster::ChildOptions options(const std::string& log) {
    cluster::ChildOptions o;
    o.open(1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    o.dup2(1, 2);
    return o;
  }
  std::string log_;
  cluster::ChildProcess child_;
};

// A private directory, removed with everything in it.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string pattern = "/tmp/vdtu-demo-switch-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct DemoSwitch {
  explicit DemoSwitch(const std::vector<std::string>& args = {}) {
    std::vector<std::string> words{sibling_program("vdtu"), "switch", "--socket", socket()};
    words.insert(words.end(), args.begin(), args.end());
    process = std::make_unique<Background>(words, dir.file("switch.log"));
    if (!process->wait_for("listening on", 30s)) throw std::runtime_error("vdtu switch did not start");
  }
  [[nodiscard]] std::string socket() const { return dir.file("switch.sock"); }
  [[nodiscard]] std::unique_ptr<Background> lwip_echo(const std::string& cidr) const {
    auto lwip = std::make_unique<Background>(
        std::vector<std::string>{sibling_program("lwip_echo"), "--socket", socket(), "--ip", cidr},
        dir.file("lwip_echo.log"));
    if (!lwip->wait_for("echo on udp and tcp port 7", 30s))
      throw std::runtime_error("lwip_echo did not start");
    return lwip;
  }

  ScratchDirectory dir;
  std::unique_ptr<Background> process;
};

net::MacAddress mac(std::uint8_t last) { return {{0x02, 0x00, 0x00, 0x00, 0x00, last}}; }

// B answers in a child process until pinged five times; A, here, pings it.
bool two_clients_ping() {
  DemoSwitch sw;
  const pid_t b = ::fork();
  if (b == 0) {
    bool ok = false;
    try {
      ProbeHost host(net::SwitchPort::connect(sw.socket()), mac(0xb), ipv4(10, 0, 0, 2));
      ok = host.serve(60s, [&] { return host.echo_requests_answered() >= 5; });
    } catch (...) {
    }
    ::_exit(ok ? 0 : 1);
  }
  ProbeHost a(net::SwitchPort::connect(sw.socket()), mac(0xa), ipv4(10, 0, 0, 1));
  const bool pinged = a.ping(ipv4(10, 0, 0, 2), 5, 30s);
  if (!pinged) ::kill(b, SIGKILL);
  int status = 0;
  ::waitpid(b, &status, 0);
  return pinged && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool lwip_answers_a_client() {
  DemoSwitch sw;
  const auto lwip = sw.lwip_echo("10.0.0.9/24");
  ProbeHost a(net::SwitchPort::connect(sw.socket()), mac(0xa), ipv4(10, 0, 0, 1));
  std::vector<std::byte> data(1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 3);
  return a.ping(ipv4(10, 0, 0, 9), 3, 30s) && a.udp_echo(ipv4(10, 0, 0, 9), 7, data, 30s);
}

bool lwip_answers_across_the_uplink() {
  net::probe::VethNamespace ns("10.199.2.1/24");
  DemoSwitch sw({"--uplink", ns.outside()});
  const auto lwip = sw.lwip_echo("10.199.2.2/24");
  return ns.in_child([] {
    const auto peer = ipv4(10, 199, 2, 2);
    return net::probe::kernel_ping(peer, 3, 2s) && net::probe::kernel_udp_echo(peer, 7, 1200, 2s) &&
           net::probe::kernel_tcp_echo(peer, 7, std::size_t{64} * 1024, 30s);
  });
}

}  // namespace

std::vector<DemoCheck> switch_checks() {
  std::vector<DemoCheck> checks{
      {"switch: two client processes ping each other through vdtu switch (ARP and ICMP on shared-memory "
       "ports)",
       two_clients_ping},
      {"switch: lwIP on a port (lwip_echo) answers a client's ping and UDP echo", lwip_answers_a_client},
  };
  if (::geteuid() == 0) {
    checks.push_back(
        {"switch: lwIP echo answers a network namespace across the AF_PACKET uplink (ping, UDP, TCP)",
         lwip_answers_across_the_uplink});
  }
  return checks;
}

}  // namespace vdtu::cli
