// The virtual DTU between real processes: a node in this test process, PEs
// started from the dtu_test_pe program in the roles the test names.
#include <gtest/gtest.h>
#include <signal.h>

#include <sys/stat.h>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "node/node.hpp"

namespace vdtu::dtu {
namespace {

using namespace std::chrono_literals;

PeProgram role(std::string name, std::vector<std::string> args = {}, bool privileged = false) {
  args.insert(args.begin(), std::move(name));
  return {VDTU_TEST_PE_PATH, std::move(args), privileged};
}

// PEs get ids 0, 1, ... in launch order. The configuring kernel is launched
// last, so every PE it names exists.
class NodeTest : public ::testing::Test {
 protected:
  void expect_all_pass(std::chrono::milliseconds timeout = 60s) {
    ASSERT_TRUE(node.wait_all_exited(timeout)) << "PEs still running";
    for (PeId pe = 0; pe < launched; ++pe) EXPECT_EQ(node.exit_code(pe), 0) << "PE " << pe;
  }
  PeId launch(const PeProgram& p) {
    ++launched;
    return node.launch(p);
  }
  // Room for the channel-exhaustion test: 1024 channels need 64 senders of
  // 16 endpoints besides its subjects.
  Node node{[] {
    NodeConfig c;
    c.pe_count = 128;
    return c;
  }()};
  PeId launched = 0;
};

TEST_F(NodeTest, SendFetchReplyWithLabelsAndCredits) {
  launch(role("sender", {"1"}));
  launch(role("receiver", {"0"}));
  launch(role("configure-messaging", {"0", "1"}, true));
  expect_all_pass();
}

TEST_F(NodeTest, UnprivilegedPeIsRefusedEveryControlOperation) {
  launch(role("unprivileged"));
  expect_all_pass();
  EXPECT_EQ(node.stats().control_denied, 10U);
  EXPECT_EQ(node.stats().channels_created, 0U);
}

TEST_F(NodeTest, BrokenControlRequestsAreAnsweredAndCounted) {
  launch(role("control-garbage"));
  launch(role("unprivileged"));  // the node keeps serving everyone
  expect_all_pass();
  EXPECT_GE(node.stats().malformed_requests, 4U);
  EXPECT_EQ(node.stats().channels_created, 0U);
}

TEST_F(NodeTest, AKernelConfiguresThroughItsMailboxAfterTheNodeFellAsleep) {
  launch(role("configure-after-idle", {}, true));
  expect_all_pass();
  EXPECT_EQ(node.stats().mailbox_requests, 6U);
  EXPECT_GE(node.stats().mailbox_kicks, 1U);  // 20 ms apart: the node slept before most of them
}

TEST_F(NodeTest, WhateverAKernelWritesIntoItsMailboxIsCheckedAndAnswered) {
  launch(role("mailbox-garbage", {}, true));
  launch(role("unprivileged"));  // the node keeps serving everyone
  expect_all_pass();
  EXPECT_EQ(node.stats().mailbox_requests, 6U);
  EXPECT_GE(node.stats().malformed_requests, 2U);
}

TEST_F(NodeTest, APeThatNeverReadsItsUpdatesIsKilledNotWaitedFor) {
  const PeId deaf = launch(role("deaf"));
  launch(role("flood-config", {"0"}, true));
  ASSERT_TRUE(node.wait_all_exited(60s));
  EXPECT_EQ(node.exit_code(deaf), 128 + SIGKILL);
  EXPECT_EQ(node.exit_code(1), 0) << "the kernel was refused only once the PE was gone";
}

// The node moves a PE's epoch by the updates it is about to send before it
// sends them, and the PE reads until it has them all: so even with thousands
// of updates still queued in the node (the PE's socket full), the PE's first
// look shows the kernel's last word.
TEST_F(NodeTest, APeSeesTheKernelsLastWordWhileItsUpdatesStillWaitInTheNode) {
  launch(role("late-looker", {"4"}));
  const PeId kernel = launch(role("configure-many", {"0", "5000"}, true));
  for (int i = 0; i < 60 && !node.exit_code(kernel); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(node.exit_code(kernel), 0) << "the kernel must be done before the looker looks, 4 s in";
  expect_all_pass();
}

TEST_F(NodeTest, ConfigurationRulesAndChannelExhaustion) {
  // PEs 0, 1 are the subjects; 2..67 only own send endpoints; 68 configures.
  constexpr int kIdle = 66;
  for (int i = 0; i < 2 + kIdle; ++i) launch(role("idle"));
  const PeId kernel = launch(role("configuration-rules", {"0", "1", "2", std::to_string(kIdle)}, true));
  for (int i = 0; i < 400 && !node.exit_code(kernel); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(node.exit_code(kernel), 0);
  EXPECT_EQ(node.stats().channels_alive, 0U) << "invalidating the receive endpoint freed every channel";
  EXPECT_GE(node.stats().channels_created, 1025U);
}

TEST_F(NodeTest, SendersAndReceiversDoNotSeeEachOthersTraffic) {
  launch(role("crosstalk-sender", {"20000", "2"}));
  launch(role("crosstalk-sender", {"20000", "1"}));
  launch(role("crosstalk-receiver", {"20000", "0x51", "0", "0x52", "1"}));
  launch(role("crosstalk-receiver", {"20000", "0x61", "0"}));
  launch(role("configure-crosstalk", {"0", "1", "2", "3"}, true));
  expect_all_pass();
}

TEST_F(NodeTest, MemoryEndpointsAreBoundedAndPermissionChecked) {
  launch(role("memory-user"));
  launch(role("memory-owner"));
  launch(role("configure-memory", {"0", "1"}, true));
  expect_all_pass();
  EXPECT_GE(node.stats().memory_rejected, 4U);
}

TEST_F(NodeTest, APrivilegedPeZeroesACheckedWindowOfMemory) {
  launch(role("clear-memory", {}, true));
  expect_all_pass();
}

TEST_F(NodeTest, ReceiverSeesConfiguredLabelAndSenderNotForgedBytes) {
  launch(role("forger"));
  launch(role("forgery-victim", {"0"}));
  launch(role("configure-forgery", {"0", "1"}, true));
  expect_all_pass();
}

TEST_F(NodeTest, KilledPeIsCleanedUpAndOthersKeepWorking) {
  // 0 serves; 1 is killed mid-conversation; 2 keeps talking; 3 talks until
  // the server itself is killed and must hear "peer gone"; 4 configures.
  launch(role("echo-server"));
  launch(role("echo-client", {"1000"}));
  launch(role("echo-client", {"1.5"}));
  launch(role("echo-client", {"20", "expect-peer-gone"}));
  launch(role("configure-echo", {"0", "1", "2", "3"}, true));
  std::this_thread::sleep_for(500ms);
  const auto before = node.stats().channels_alive;
  ASSERT_EQ(::kill(node.pid_of(1), SIGKILL), 0);
  for (int i = 0; i < 100 && !node.exit_code(1); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(node.exit_code(1), 128 + SIGKILL);
  for (int i = 0; i < 100 && node.stats().channels_alive != before - 2; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(node.stats().channels_alive, before - 2) << "the dead client's request and reply channels";
  for (int i = 0; i < 400 && !node.exit_code(2); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(node.exit_code(2), 0) << "the other client kept its round trips going";
  ASSERT_EQ(::kill(node.pid_of(0), SIGKILL), 0);
  ASSERT_TRUE(node.wait_all_exited(30s));
  EXPECT_EQ(node.exit_code(3), 0) << "the last client was told its peer is gone";
  EXPECT_EQ(node.stats().channels_alive, 0U);
}

}  // namespace
}  // namespace vdtu::dtu

namespace vdtu::dtu {
namespace {

// A node runs any number of programs over its life, not just `pes`: slots
// of PEs that ended are reused (never-used ones first), and a new PE in a
// reused slot starts with nothing of its predecessor.
TEST(NodeSlots, SlotsOfEndedPesAreReused) {
  NodeConfig config;
  config.pe_count = 2;
  Node node(config);
  const PeId first = node.launch(role("unprivileged"));
  const PeId second = node.launch(role("unprivileged"));
  EXPECT_NE(first, second);
  ASSERT_TRUE(node.wait_all_exited(60s));
  for (int round = 0; round < 5; ++round) {
    const PeId pe = node.launch(role("unprivileged"));
    EXPECT_TRUE(pe == first || pe == second) << "a slot of this node: " << pe;
    ASSERT_TRUE(node.wait_all_exited(60s));
    EXPECT_EQ(node.exit_code(pe), 0) << "round " << round;
  }
  EXPECT_EQ(node.stats().pes_exited, 7U);
  EXPECT_EQ(node.stats().control_denied, 7U * 10U);
  // Both slots busy: a third program finds no PE.
  node.launch(role("idle"));
  node.launch(role("idle"));
  EXPECT_THROW(node.launch(role("idle")), std::runtime_error);
}

}  // namespace
}  // namespace vdtu::dtu

namespace vdtu::dtu {
namespace {

// What the hostile PE reports: attempt name@target -> outcome.
std::map<std::string, std::string> read_attempts(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("attempt=", 0) != 0) continue;
    const auto field = [&](const std::string& key) {
      const auto at = line.find(key + "=");
      if (at == std::string::npos) return std::string{};
      const auto from = at + key.size() + 1;
      return line.substr(from, line.find(' ', from) - from);
    };
    out[field("attempt") + "@" + field("target")] = field("outcome");
  }
  return out;
}

// A PE started by the node like any other tries to reach what it was not
// handed: the node's and the other PEs' fds through /proc, ptrace,
// process_vm_readv, signals, and it scribbles over the doorbell page and the
// channel it shares with a victim while an honest PE talks to that victim.
// Every attempt fails, what it may write is contained, and everyone else
// carries on.
TEST(NodeIsolation, AHostilePeReachesNothingItWasNotHanded) {
  char dir[] = "/tmp/vdtu-hostile-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  ASSERT_EQ(::chmod(dir, 0733), 0) << "the sandboxed PE writes its report here";
  const std::string report = std::string(dir) + "/report";
  {
    Node node{NodeConfig{}};
    const PeId victim = node.launch(role("steady-receiver", {"300"}));
    const PeId honest = node.launch(role("steady-sender", {"300", "10"}));  // 3 s and more
    const PeId hostile =
        node.launch({VDTU_HOSTILE_PE_PATH,
                     {"--victim", std::to_string(node.pid_of(victim)), "--victim",
                      std::to_string(node.pid_of(honest)), "--report", report, "--scribble-seconds", "1.5"},
                     false});
    const PeId kernel =
        node.launch(role("configure-hostile-scene",
                         {std::to_string(victim), std::to_string(honest), std::to_string(hostile)}, true));
    ASSERT_TRUE(node.wait_all_exited(120s));
    EXPECT_EQ(node.exit_code(victim), 0) << "the victim took every honest message";
    EXPECT_EQ(node.exit_code(honest), 0) << "every honest round trip completed";
    EXPECT_EQ(node.exit_code(kernel), 0);
    EXPECT_EQ(node.exit_code(hostile), 0) << "an attempt of the hostile PE succeeded (see its report)";
    EXPECT_EQ(node.stats().control_denied, 1U) << "its request for the global memory";
  }
  const auto attempts = read_attempts(report);
  std::remove(report.c_str());
  ::rmdir(dir);
  for (const auto& [what, outcome] : attempts) {
    EXPECT_TRUE(outcome == "denied" || outcome == "contained") << what << ": " << outcome;
  }
  for (const auto* must : {"proc_fd_list@node", "proc_fd_open@node", "proc_fd_open@victim", "proc_mem@node",
                           "process_vm_readv@node", "process_vm_readv@victim", "kill@node", "kill@victim",
                           "pidfd_send_signal@node", "truncate_victim_doorbell@victim",
                           "seal_write_channel@victim", "config_global_memory@node"}) {
    ASSERT_TRUE(attempts.count(must) == 1) << "not attempted: " << must;
    EXPECT_EQ(attempts.at(must), "denied") << must;
  }
  for (const auto* must : {"write_victim_doorbell@victim", "write_channel@victim", "write_own_epoch@self"}) {
    ASSERT_TRUE(attempts.count(must) == 1) << "not attempted: " << must;
    EXPECT_EQ(attempts.at(must), "contained") << must;
  }
  const auto ptrace_attempts = std::count_if(attempts.begin(), attempts.end(), [](const auto& a) {
    return a.first.rfind("ptrace", 0) == 0 && a.first.find("@node") != std::string::npos;
  });
  EXPECT_GE(ptrace_attempts, 1) << "ptrace on the node";
}

}  // namespace
}  // namespace vdtu::dtu
