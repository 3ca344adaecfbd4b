// QEMU guests (TCG) on `vdtu switch` vhost-user ports, each started as a
// user would start it: `vdtu vm` processes next to a `vdtu switch` process.
// Two guests ping each other and run iperf3 (TCP and UDP); a guest reaches
// iperf3 in a network namespace through the switch's AF_PACKET uplink; vdtu
// nodes in two guests run the cross-node capability scenarios; a guest's
// QEMU is killed mid-traffic and a new one gets the port back.
// Needs root and qemu-system-x86_64 (skipped otherwise).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "net/probe/veth_namespace.hpp"
#include "support/program_process.hpp"
#include "support/switch_process.hpp"

namespace vdtu::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kGuestLimit = 240s;  // boots under TCG on a busy 2-core host are slow

std::string skip_reason() {
  if (::geteuid() != 0) return "needs root (vhost-user memory sharing with QEMU, namespaces)";
  if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0) return "qemu-system-x86_64 is not installed";
  return {};
}

// Where the switch's vhost-user sockets go: a fresh directory per test.
class SocketDir {
 public:
  SocketDir() {
    std::string pattern = "/tmp/vdtu-vm-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  SocketDir(const SocketDir&) = delete;
  SocketDir& operator=(const SocketDir&) = delete;
  ~SocketDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  // "--vhost-user NAME=DIR/NAME.sock" for the switch.
  [[nodiscard]] std::vector<std::string> ports(const std::vector<std::string>& names) const {
    std::vector<std::string> args;
    for (const auto& n : names) args.insert(args.end(), {"--vhost-user", n + "=" + socket(n)});
    return args;
  }
  [[nodiscard]] std::string socket(const std::string& name) const { return path_ + "/" + name + ".sock"; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A `vdtu vm` process on a switch port; its console and result in a log file.
class VmProcess {
 public:
  VmProcess(const SocketDir& dir, const std::string& port, int n, const std::string& command,
            const std::string& log_name = {}) {
    log_ = dir.path() + "/" + (log_name.empty() ? port : log_name) + ".log";
    process_ = std::make_unique<ProgramProcess>(
        std::vector<std::string>{VDTU_PATH, "vm", "--vhost-user", dir.socket(port), "--mac",
                                 "52:54:00:00:00:0" + std::to_string(n), "--ip",
                                 "10.0.0." + std::to_string(n) + "/24", "--timeout", "200", "--", command},
        log_);
  }
  [[nodiscard]] std::string log() const { return process_->log(); }
  [[nodiscard]] bool wait_for_log(const std::string& needle) const {
    return process_->wait_for_log(needle, kGuestLimit);
  }
  // The exit status of `vdtu vm` (the guest command's), waiting for it.
  int wait() {
    const auto deadline = std::chrono::steady_clock::now() + kGuestLimit;
    int status = 0;
    while (::waitpid(process_->pid(), &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(100ms);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // SIGKILL to QEMU itself (the child of `vdtu vm`), as if it crashed.
  void kill_qemu() const {
    std::ifstream children("/proc/" + std::to_string(process_->pid()) + "/task/" +
                           std::to_string(process_->pid()) + "/children");
    pid_t qemu = 0;
    ASSERT_TRUE(children >> qemu) << "no QEMU under vdtu vm";
    ASSERT_EQ(::kill(qemu, SIGKILL), 0);
  }

 private:
  std::string log_;
  std::unique_ptr<ProgramProcess> process_;
};

// Pings until the peer answers (it may still be booting).
std::string reach(const std::string& peer) {
  return "n=0; until ping -c 1 -W 1 " + peer + " >/dev/null; do n=$((n+1)); [ $n -lt 150 ] || exit 9; done; ";
}

TEST(Vm, TwoGuestsPingAndRunIperf3ThroughTheSwitch) {
  if (const auto why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const SocketDir dir;
  SwitchProcess sw(dir.ports({"a", "b"}));
  // The server answers one TCP test, then one UDP test.
  VmProcess b(dir, "b", 2, reach("10.0.0.1") + "ping -c 3 10.0.0.1 && iperf3 -s -1 && iperf3 -s -1");
  VmProcess a(dir, "a", 1,
              reach("10.0.0.2") +
                  "ping -c 3 10.0.0.2 || exit 1; sleep 1; "
                  "until iperf3 -c 10.0.0.2 -t 2; do n=$((n+1)); [ $n -lt 20 ] || exit 2; sleep 1; done; "
                  "sleep 1; until iperf3 -c 10.0.0.2 -u -b 50M -t 2; do n=$((n+1)); [ $n -lt 20 ] || exit 3; "
                  "sleep 1; done");
  EXPECT_EQ(a.wait(), 0) << a.log() << sw.log();
  EXPECT_EQ(b.wait(), 0) << b.log() << sw.log();
  EXPECT_NE(a.log().find("3 packets transmitted, 3 packets received"), std::string::npos) << a.log();
  EXPECT_NE(b.log().find("3 packets transmitted, 3 packets received"), std::string::npos) << b.log();
  EXPECT_NE(a.log().find("bits/sec"), std::string::npos) << a.log();
  EXPECT_NE(a.log().find("Jitter"), std::string::npos) << "the UDP test ran\n" << a.log();
}

TEST(Vm, AGuestReachesANamespaceThroughTheUplink) {
  if (const auto why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const net::probe::VethNamespace ns("10.0.0.100/24");
  const SocketDir dir;
  auto args = dir.ports({"a"});
  args.insert(args.end(), {"--uplink", ns.outside()});
  SwitchProcess sw(args);
  ProgramProcess server({"/bin/sh", "-c", "exec ip netns exec " + ns.name() + " iperf3 -s -1"},
                        dir.path() + "/ns.log");
  VmProcess a(dir, "a", 1, reach("10.0.0.100") + "ping -c 3 10.0.0.100 && iperf3 -c 10.0.0.100 -t 2");
  EXPECT_EQ(a.wait(), 0) << a.log() << sw.log();
  EXPECT_NE(a.log().find("3 packets transmitted, 3 packets received"), std::string::npos) << a.log();
  EXPECT_TRUE(server.wait_for_log("receiver", 10s)) << server.log();
}

TEST(Vm, NodesInTwoGuestsRunTheCrossNodeScenarios) {
  if (const auto why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const SocketDir dir;
  ProgramProcess cluster(
      {VDTU_PATH, "cluster", "--vms", "--config", VDTU_VM_CLUSTER_FILE, "--timeout", "120"},
      dir.path() + "/cluster.log");
  EXPECT_TRUE(cluster.wait_for_log("nodes finished cleanly", 400s)) << cluster.log();
  const auto log = cluster.log();
  EXPECT_NE(log.find("cluster: 2 of 2 nodes finished cleanly"), std::string::npos) << log;
  EXPECT_NE(log.find("sealed (ChaCha20-Poly1305): 0 failed authentication"), std::string::npos) << log;
  EXPECT_EQ(log.find("exited with 1"), std::string::npos) << log;
}

TEST(Vm, QemuKilledMidTrafficAndRestartedGetsThePortBack) {
  if (const auto why = skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const SocketDir dir;
  SwitchProcess sw(dir.ports({"a", "b"}));
  // b pings a all along: it must see a answer, stop answering, and answer again.
  VmProcess b(dir, "b", 2,
              reach("10.0.0.1") +
                  "echo PEER-UP; until ! ping -c 1 -W 1 10.0.0.1 >/dev/null; do :; done; echo PEER-LOST; " +
                  reach("10.0.0.1") + "echo PEER-BACK; ping -c 3 10.0.0.1");
  {
    VmProcess a(dir, "a", 1, "sleep 300", "a-first");
    ASSERT_TRUE(b.wait_for_log("PEER-UP")) << b.log() << a.log();
    a.kill_qemu();
    EXPECT_NE(a.wait(), 0) << a.log();
  }
  ASSERT_TRUE(b.wait_for_log("PEER-LOST")) << b.log();
  VmProcess again(dir, "a", 1, "sleep 300", "a-again");
  EXPECT_EQ(b.wait(), 0) << b.log() << again.log() << sw.log();
  EXPECT_NE(b.log().find("PEER-BACK"), std::string::npos) << b.log();
  EXPECT_NE(sw.log().find("closed"), std::string::npos) << "the switch saw the first QEMU go\n" << sw.log();
}

}  // namespace
}  // namespace vdtu::testing
