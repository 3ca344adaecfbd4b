// The virtual DTU between real processes: a node in this test process, PEs
// started from the dtu_test_pe program in the roles the test names.
#include <gtest/gtest.h>
#include <signal.h>

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
  Node node{NodeConfig{}};
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

TEST_F(NodeTest, APeThatNeverReadsItsUpdatesIsKilledNotWaitedFor) {
  const PeId deaf = launch(role("deaf"));
  launch(role("flood-config", {"0"}, true));
  ASSERT_TRUE(node.wait_all_exited(60s));
  EXPECT_EQ(node.exit_code(deaf), 128 + SIGKILL);
  EXPECT_EQ(node.exit_code(1), 0) << "the kernel was refused only once the PE was gone";
}

TEST_F(NodeTest, ConfigurationRulesAndChannelExhaustion) {
  // PEs 0, 1 are the subjects; 2..35 only own send endpoints; 36 configures.
  constexpr int kIdle = 34;
  for (int i = 0; i < 2 + kIdle; ++i) launch(role("idle"));
  const PeId kernel = launch(role("configuration-rules", {"0", "1", "2", std::to_string(kIdle)}, true));
  for (int i = 0; i < 400 && !node.exit_code(kernel); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(node.exit_code(kernel), 0);
  EXPECT_EQ(node.stats().channels_alive, 0U) << "invalidating the receive endpoint freed every channel";
  EXPECT_GE(node.stats().channels_created, 513U);
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
