// DTU messages between two nodes: two Node objects in this process, each with
// its own PEs (real processes) and its own bridge on a real UDP socket on
// loopback. Their kernels (privileged test PEs) each configure their own PEs;
// the bridges carry the messages.
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bridge/cluster_key.hpp"
#include "bridge/session_endpoint.hpp"
#include "bridge/udp_socket.hpp"
#include "node/node.hpp"

namespace vdtu::dtu {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kPesPerNode = 8;

PeProgram role(std::string name, std::vector<std::string> args = {}, bool privileged = false) {
  args.insert(args.begin(), std::move(name));
  return {VDTU_TEST_PE_PATH, std::move(args), privileged};
}

// A bound socket for a node to adopt (bridge_fd): no other test can take its
// port between our choosing it and the node using it.
int bound_socket(std::uint16_t port, std::uint16_t& bound) {
  auto socket = bridge::UdpSocket::bind("127.0.0.1", port);
  bound = socket.port();
  return std::move(socket).release().release();
}

// Node i owns global PEs 8i .. 8i+7.
class ClusterTest : public ::testing::Test {
 protected:
  void start(bridge::FaultRates faults = {}, std::chrono::milliseconds peer_timeout = 3000ms,
             std::optional<bridge::ClusterKey> key = std::nullopt) {
    const std::array<int, 2> fds{bound_socket(0, ports[0]), bound_socket(0, ports[1])};
    for (std::uint16_t i = 0; i < 2; ++i) {
      NodeConfig& c = configs[i];
      c.bridge_fd = fds[i];
      c.node_id = i;
      c.first_pe = static_cast<PeId>(i * kPesPerNode);
      c.pe_count = kPesPerNode;
      c.faults = faults;
      c.faults.seed = 7 + i;
      c.peer_timeout = peer_timeout;
      c.cluster_key = key;
      const std::uint16_t other = 1 - i;
      c.peers.push_back(
          {other, "127.0.0.1", ports[other], static_cast<PeId>(other * kPesPerNode), kPesPerNode});
      nodes[i] = std::make_unique<Node>(c);
    }
  }
  // Node i again, as a new process would be: same configuration, new session.
  void restart(int i) {
    configs[i].bridge_fd = bound_socket(ports[i], ports[i]);
    nodes[i] = std::make_unique<Node>(configs[i]);
    launched[i].clear();
  }
  PeId launch(int node, const PeProgram& p) {
    const PeId pe = nodes[node]->launch(p);
    launched[node].push_back(pe);
    return pe;
  }
  void expect_all_pass(int node, std::chrono::milliseconds timeout = 60s) {
    ASSERT_TRUE(nodes[node]->wait_all_exited(timeout)) << "PEs of node " << node << " still running";
    for (PeId pe : launched[node]) EXPECT_EQ(nodes[node]->exit_code(pe), 0) << "PE " << pe;
  }
  std::array<std::uint16_t, 2> ports{};
  NodeConfig configs[2];
  std::unique_ptr<Node> nodes[2];
  std::vector<PeId> launched[2];
};

TEST_F(ClusterTest, SendFetchReplyAcrossNodesWithLabelsAndCredits) {
  start();
  launch(0, role("sender", {"8"}));                       // PE 0
  launch(1, role("receiver", {"0"}));                     // PE 8
  launch(1, role("configure-receiver", {"8"}, true));     // node 1's kernel
  launch(0, role("configure-sender", {"0", "8"}, true));  // node 0's kernel
  expect_all_pass(0);
  expect_all_pass(1);
  EXPECT_GE(nodes[0]->stats().remote_messages, 3U);
  EXPECT_GE(nodes[1]->stats().remote_messages, 3U);  // the replies
}

TEST_F(ClusterTest, BindingWaitsForAReceiveEndpointConfiguredLater) {
  start();
  launch(0, role("sender", {"8"}));
  launch(0, role("configure-sender", {"0", "8"}, true));  // before the receiver even exists
  launch(1, role("receiver", {"0"}));
  launch(1, role("configure-receiver", {"8"}, true));
  expect_all_pass(0);
  expect_all_pass(1);
}

TEST_F(ClusterTest, MessagesSentJustBeforeTheSenderEndsStillArrive) {
  start();
  launch(1, role("burst-receiver", {"50"}));  // PE 8
  launch(1, role("configure-receiver", {"8"}, true));
  launch(0, role("burst-sender", {"50"}));  // PE 0: sends, then exits at once
  launch(0, role("configure-sender", {"0", "8"}, true));
  expect_all_pass(0);
  expect_all_pass(1);
  EXPECT_EQ(nodes[1]->stats().remote_unknown_binding, 0U);
}

TEST_F(ClusterTest, EveryRoundTripCompletesExactlyOnceUnderLossDuplicationAndReordering) {
  start({0.2, 0.1, 0.1, 1});
  launch(1, role("echo-server", {"2"}));  // PE 8
  launch(0, role("echo-client", {"1"}));  // PE 0
  launch(0, role("echo-client", {"1"}));  // PE 1
  launch(1, role("configure-echo-server", {"8"}, true));
  launch(0, role("configure-echo-clients", {"8", "0", "1"}, true));
  expect_all_pass(0);
  expect_all_pass(1);
  const auto s0 = nodes[0]->stats();
  const auto s1 = nodes[1]->stats();
  EXPECT_GT(s0.faults.dropped + s1.faults.dropped, 0U);
  EXPECT_GT(s0.faults.duplicated + s1.faults.duplicated, 0U);
  EXPECT_GT(s0.retransmissions + s1.retransmissions, 0U);
  EXPECT_GT(s0.duplicates_dropped + s1.duplicates_dropped, 0U);
  EXPECT_EQ(s0.remote_unknown_binding + s1.remote_unknown_binding, 0U);
}

// A PE on node 1 reads and writes memory of node 0 (a PE's and the global
// memory) through memory endpoints: permissions and bounds hold, 300 kB go
// through in pieces and come back intact, the owner finds what was written.
TEST_F(ClusterTest, MemoryEndpointsReachAnotherNodesMemory) {
  start();
  launch(0, role("memory-owner"));  // PE 0
  launch(1, role("memory-user"));   // PE 8
  launch(0, role("configure-memory-owner", {"0"}, true));
  launch(1, role("configure-remote-memory", {"8", "0", "0"}, true));
  expect_all_pass(0);
  expect_all_pass(1);
  EXPECT_GE(nodes[0]->stats().memory_requests, 8U) << "served for node 1's PE";
}

// A PE reading another node's memory when that node disappears: the read
// waiting for it fails with kPeerGone, and so does every later one.
TEST_F(ClusterTest, MemoryOfALostNodeFailsWithPeerGone) {
  start({}, 300ms);
  launch(1, role("remote-memory-until-gone"));  // PE 8
  launch(1, role("configure-remote-memory-reader", {"8", "0"}, true));
  std::this_thread::sleep_for(300ms);  // reads going through
  nodes[0].reset();
  expect_all_pass(1);
  EXPECT_EQ(nodes[1]->stats().peers_lost, 1U);
}

// With a cluster key: the nodes pair up through a handshake, the duplicates
// the wire makes are replays; a stranger's datagrams (even a handshake made
// with the cluster key) are refused by address; all are counted and dropped,
// and every round trip still completes once.
TEST_F(ClusterTest, SealedDatagramsRejectForgeriesAndReplays) {
  const auto key = bridge::parse_cluster_key(bridge::random_cluster_key_hex());
  start({0.1, 0.2, 0.1, 1}, 3000ms, key);
  launch(1, role("echo-server", {"2"}));
  launch(0, role("echo-client", {"1"}));
  launch(1, role("configure-echo-server", {"8"}, true));
  launch(0, role("configure-echo-clients", {"8", "0"}, true));

  // From an address that is not a peer's: refused before anything is opened,
  // whatever the datagram holds.
  const auto attacker = bridge::UdpSocket::bind("127.0.0.1", 0);
  const auto node1 = bridge::make_address("127.0.0.1", nodes[1]->bridge_port());
  std::vector<std::byte> datagram(64, std::byte{0x5a});
  ASSERT_TRUE(attacker.send_to(node1, datagram));  // garbage
  // A handshake made with the right key, claiming to be node 0, from elsewhere.
  bridge::SessionConfig insider_config;
  insider_config.cluster_key = key;
  const std::array<bridge::NodeId, 1> node1_id{1};
  bridge::SessionEndpoint insider(insider_config, node1_id);
  insider.poll(bridge::SessionClock::now(), [&](bridge::NodeId, std::span<const std::byte> d) {
    ASSERT_TRUE(attacker.send_to(node1, d));
    ASSERT_TRUE(attacker.send_to(node1, d));
    ASSERT_TRUE(attacker.send_to(node1, d));
  });

  expect_all_pass(0);
  expect_all_pass(1);
  const auto s0 = nodes[0]->stats();
  const auto s1 = nodes[1]->stats();
  EXPECT_EQ(s1.datagrams_from_strangers, 4U);
  EXPECT_EQ(s1.datagrams_forged, 0U);
  EXPECT_EQ(s0.peers_returned + s1.peers_returned, 0U) << "one incarnation each";
  EXPECT_GT(s0.datagrams_replayed + s1.datagrams_replayed, 1U) << "the wire's duplicates";
  EXPECT_EQ(s0.datagrams_forged, 0U);
  EXPECT_GT(s0.faults.duplicated + s1.faults.duplicated, 0U);
  EXPECT_EQ(s0.remote_unknown_binding + s1.remote_unknown_binding, 0U);
}

// A message larger than a frame can carry is refused when the endpoint is
// configured (it would otherwise jam the link); the largest one that fits
// travels both ways, and the link goes on carrying the rest.
TEST_F(ClusterTest, TooLargeForAFrameIsRefusedTheLargestFrameIsCarried) {
  start({0.05, 0.05, 0.05, 1});
  launch(1, role("echo-server", {"2"}));  // PE 8
  launch(0, role("large-echo-client", {"1"}));
  launch(1, role("configure-large-echo-server", {"8"}, true));
  launch(0, role("configure-large-echo-client", {"8", "0"}, true));
  expect_all_pass(0);
  expect_all_pass(1);
  EXPECT_EQ(nodes[0]->stats().remote_bindings_refused + nodes[1]->stats().remote_bindings_refused, 0U);
}

TEST_F(ClusterTest, SendersLearnThatAPeerNodeDisappeared) {
  start({}, 500ms);
  launch(1, role("echo-server", {"60"}));
  launch(0, role("echo-client", {"30", "expect-peer-gone"}));
  launch(1, role("configure-echo-server", {"8"}, true));
  launch(0, role("configure-echo-clients", {"8", "0"}, true));
  std::this_thread::sleep_for(300ms);  // some round trips first (not required for the outcome)
  nodes[1].reset();                    // node 1 vanishes with its PEs and its bridge
  expect_all_pass(0);
  EXPECT_EQ(nodes[0]->stats().peers_lost, 1U);
}

// A lost node that comes back (a new process on the same address) is a new
// incarnation: new bindings to it work; nothing of the old one leaks in.
TEST_F(ClusterTest, ALostNodeThatRestartsIsReachableAgain) {
  start({}, 300ms);
  std::this_thread::sleep_for(200ms);  // heartbeats: each has heard the other
  nodes[1].reset();
  for (int i = 0; i < 100 && nodes[0]->stats().peers_lost == 0; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(nodes[0]->stats().peers_lost, 1U) << "node 0 never noticed";
  restart(1);
  // Until the new node 1 speaks (its first heartbeat), node 0 holds it lost.
  for (int i = 0; i < 100 && nodes[0]->stats().peers_returned == 0; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_EQ(nodes[0]->stats().peers_returned, 1U) << "node 0 never heard the new node 1";
  launch(1, role("echo-server", {"2"}));
  const PeId client = launch(0, role("echo-client", {"1"}));
  launch(1, role("configure-echo-server", {"8"}, true));
  launch(0, role("configure-echo-clients", {"8", std::to_string(client)}, true));
  expect_all_pass(0);
  expect_all_pass(1);
  EXPECT_GE(nodes[1]->stats().remote_messages, 1U) << "the replies went back to node 0";
}

// Sealed, a restarted node proves it is a new incarnation in its handshake:
// the other node ends what it had with the old one at once, without waiting
// for peer_timeout, and pairs up with the new one. Its earlier bindings end
// with kPeerGone (the client that talked to the old node says so).
TEST_F(ClusterTest, ASealedNodeRestartedAtOnceIsPairedUpAgain) {
  start({}, 60'000ms, bridge::parse_cluster_key(bridge::random_cluster_key_hex()));
  launch(1, role("echo-server", {"60"}));
  launch(0, role("echo-client", {"30", "expect-peer-gone"}));
  launch(1, role("configure-echo-server", {"8"}, true));
  launch(0, role("configure-echo-clients", {"8", "0"}, true));
  std::this_thread::sleep_for(300ms);  // round trips through the first session
  nodes[1].reset();
  restart(1);               // long before node 0 could notice the silence
  expect_all_pass(0, 30s);  // the old node 1's ending (UNBOUND) may have told the client first
  for (int i = 0; i < 200 && nodes[0]->stats().peers_returned == 0; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(nodes[0]->stats().peers_returned, 1U) << "the new incarnation was recognised";
  EXPECT_EQ(nodes[0]->stats().peers_lost, 0U) << "not by its silence";
  launched[0].clear();
  launch(1, role("echo-server", {"2"}));
  const PeId client = launch(0, role("echo-client", {"1"}));
  launch(1, role("configure-echo-server", {"8"}, true));
  launch(0, role("configure-echo-clients", {"8", std::to_string(client)}, true));
  expect_all_pass(0);
  expect_all_pass(1);
}

}  // namespace
}  // namespace vdtu::dtu
