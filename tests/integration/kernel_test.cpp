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

}  // namespace
}  // namespace vdtu::dtu
