// The SemperOS kernel on the vDTU: a node, VPE processes in the roles the
// test names, and the kernel as the privileged PE launched last.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <thread>
#include <vector>

#include "node/node.hpp"

namespace vdtu::dtu {
namespace {

using namespace std::chrono_literals;

// "HOLDER:TARGET:10" (appended piecewise: g++ 12 misreports operator+ chains).
std::string grant(PeId holder, PeId target) {
  std::string g = std::to_string(holder);
  g += ':';
  g += std::to_string(target);
  g += ":10";
  return g;
}

class KernelTest : public ::testing::Test {
 protected:
  PeId vpe(std::string role, std::vector<std::string> args = {}) {
    args.insert(args.begin(), std::move(role));
    const PeId pe = node.launch({VDTU_KERNEL_TEST_VPE_PATH, std::move(args), false});
    vpes.push_back(pe);
    return pe;
  }
  // The kernel gets every VPE; each pair (a, b) in `peers` holds each other's
  // VPE capability at selector 10.
  PeId kernel(std::vector<std::pair<PeId, PeId>> peers = {}) {
    std::string list;
    for (PeId pe : vpes) {
      if (!list.empty()) list += ',';
      list += std::to_string(pe);
    }
    std::vector<std::string> args{"--vpes", list};
    for (auto [a, b] : peers) args.insert(args.end(), {"--grant", grant(a, b), "--grant", grant(b, a)});
    return kernel_pe = node.launch({VDTU_SEMPER_KERNEL_PATH, args, true});
  }
  void expect_all_pass() {
    ASSERT_TRUE(node.wait_all_exited(60s)) << "PEs still running";
    for (PeId pe : vpes) EXPECT_EQ(node.exit_code(pe), 0) << "VPE on PE " << pe;
    EXPECT_EQ(node.exit_code(kernel_pe), 0) << "the kernel";
  }

  Node node{NodeConfig{}};
  std::vector<PeId> vpes;
  PeId kernel_pe = 0;
};

TEST_F(KernelTest, NoopGatesRevokeChainAndMalformedRequests) {
  vpe("basics");
  kernel();
  expect_all_pass();
}

TEST_F(KernelTest, MemoryCapabilitiesDeriveAndAccess) {
  vpe("memory");
  kernel();
  expect_all_pass();
}

TEST_F(KernelTest, RevokeATreeOfAThousandChildren) {
  vpe("wide-tree", {"1000"});
  kernel();
  expect_all_pass();
}

TEST_F(KernelTest, ExchangeDelegateRevokeCascadeAndObtainBetweenVpes) {
  const PeId a = vpe("exchange-a");
  const PeId b = vpe("exchange-b");
  kernel({{a, b}});
  expect_all_pass();
}

TEST_F(KernelTest, SessionsObtainAndDelegateThroughAServer) {
  vpe("server", {"4"});  // OPEN, OBTAIN, DELEGATE, OBTAIN
  vpe("client");
  kernel();
  expect_all_pass();
}

TEST_F(KernelTest, CreateVpeDelegateStartAndWaitForItsExitCode) {
  vpe("parent");
  kernel();
  expect_all_pass();
}

TEST_F(KernelTest, KilledVpeLosesItsCapabilitiesAndWhatWasDerivedFromThem) {
  const PeId holder = vpe("victim-holder");
  const PeId doomed = vpe("doomed");
  kernel({{holder, doomed}});
  // Wait until the holder has obtained and delegated (it posts step 2), then kill.
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 100 && node.exit_code(holder) == std::nullopt; ++i) {
    if (i == 10) ::kill(node.pid_of(doomed), SIGKILL);
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(node.wait_all_exited(60s));
  EXPECT_EQ(node.exit_code(holder), 0);
  EXPECT_EQ(node.exit_code(doomed), 128 + SIGKILL);
  EXPECT_EQ(node.exit_code(kernel_pe), 0);
}

// A VPE that exits at once, before the kernel starts: the kernel carries
// on, the node reports its exit code as usual, and a VPE waiting for it
// learns that code.
TEST_F(KernelTest, AVpeThatExitedBeforeTheKernelStartedIsAnExitLikeAnyOther) {
  const PeId quick = vpe("exit-now", {"7"});
  for (int i = 0; i < 1000 && !node.exit_code(quick); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(node.exit_code(quick), 7);
  const PeId waiter = vpe("exit-waiter", {"7"});
  vpe("basics");
  kernel({{waiter, quick}});
  ASSERT_TRUE(node.wait_all_exited(60s)) << "PEs still running";
  EXPECT_EQ(node.exit_code(waiter), 0);
  EXPECT_EQ(node.exit_code(kernel_pe), 0) << "the kernel";
}

// The same with the VPE exiting while the kernel boots (or before: either
// way the kernel may not give up).
TEST_F(KernelTest, AVpeThatExitsWhileTheKernelStartsIsAnExitLikeAnyOther) {
  const PeId quick = vpe("exit-now", {"9"});
  const PeId waiter = vpe("exit-waiter", {"9"});
  kernel({{waiter, quick}});
  ASSERT_TRUE(node.wait_all_exited(60s)) << "PEs still running";
  EXPECT_EQ(node.exit_code(quick), 9);
  EXPECT_EQ(node.exit_code(waiter), 0);
  EXPECT_EQ(node.exit_code(kernel_pe), 0) << "the kernel";
}

// Only a server: nobody can call it, so the kernel shuts it down and ends.
TEST_F(KernelTest, AKernelWhoseOnlyVpeIsAServerEnds) {
  vpe("gate-server");
  kernel();
  expect_all_pass();
}

// REQMEM of a region another VPE wrote and freed reads zeros.
TEST_F(KernelTest, ReqMemHandsOutZeroedMemory) {
  const PeId writer = vpe("dirty-writer");
  const PeId reader = vpe("zero-reader");
  kernel({{writer, reader}});
  expect_all_pass();
}

// A server that reads nothing while its calls pile up: the kernel keeps
// serving the closer's 300 syscalls, and every CLOSE reaches the server, in
// order, when it reads again (the kernel used to wait 1 s per call for
// room, then drop it).
TEST_F(KernelTest, ASlowServerNeitherStallsTheKernelNorLosesCalls) {
  const PeId server = vpe("lazy-server", {"12", "late"});
  const PeId closer = vpe("closer", {"12", "late"});
  kernel({{server, closer}});
  expect_all_pass();
}

// One that never reads: the closer is served all the same, and its call
// queued for the server fails cleanly when the server goes.
TEST_F(KernelTest, AServerThatNeverAnswersFailsItsCallsWhenItGoes) {
  const PeId server = vpe("lazy-server", {"12", "never"});
  const PeId closer = vpe("closer", {"12", "never"});
  kernel({{server, closer}});
  expect_all_pass();
}

}  // namespace
}  // namespace vdtu::dtu
