// Two nodes carry an echo workload while the network around them is hostile:
// strangers throw random, empty, oversized, truncated, bit-flipped and
// replayed datagrams at them (a user-space relay between the nodes captures
// real frames to copy), a flood of 100k datagrams arrives, and a third node
// that is a configured peer but does not play by the rules floods BINDs,
// ignores windows, lies about credit and asks for memory it will not read.
// The workload completes, every discard is counted, memory stays bounded.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bridge/cluster_key.hpp"
#include "bridge/frame.hpp"
#include "bridge/reliable_link.hpp"
#include "bridge/session_endpoint.hpp"
#include "bridge/udp_socket.hpp"
#include "node/bridge_batch.hpp"
#include "node/bridge_messages.hpp"
#include "node/node.hpp"
#include "protocol/control_messages.hpp"
#include "protocol/fd_socket.hpp"
#include "vdtu/message_header.hpp"

namespace vdtu::dtu {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kPesPerNode = 8;
// Sanitizers keep shadow memory and (ASan) freed memory in quarantine:
// hundreds of MB of resident memory that are not the node's.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif
constexpr std::uint16_t kHostileNode = 2;

PeProgram role(std::string name, std::vector<std::string> args = {}, bool privileged = false) {
  args.insert(args.begin(), std::move(name));
  return {VDTU_TEST_PE_PATH, std::move(args), privileged};
}

// "VmRSS" (now) or "VmHWM" (the peak so far) of this process, in KiB.
std::size_t resident_kib(const std::string& which) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(which + ":", 0) == 0) return std::stoul(line.substr(which.size() + 1));
  }
  return 0;
}

// Sits between node 0 and node 1: each node's peer address is one of the
// relay's sockets. Forwards everything and keeps copies of recent datagrams.
class Relay {
 public:
  Relay()
      : to_node0_(bridge::UdpSocket::bind("127.0.0.1", 0)),
        to_node1_(bridge::UdpSocket::bind("127.0.0.1", 0)) {}
  ~Relay() { stop(); }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Node 0 sends to (and hears from) port_for_node0(); node 1 likewise.
  [[nodiscard]] std::uint16_t port_for_node0() const { return to_node0_.port(); }
  [[nodiscard]] std::uint16_t port_for_node1() const { return to_node1_.port(); }
  const bridge::UdpSocket& socket_for_node1() const { return to_node1_; }

  void start(std::uint16_t node0_port, std::uint16_t node1_port) {
    node0_ = bridge::make_address("127.0.0.1", node0_port);
    node1_ = bridge::make_address("127.0.0.1", node1_port);
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Copies of datagrams node 0 sent to node 1.
  std::vector<std::vector<std::byte>> captured() {
    std::lock_guard lock(mutex_);
    return {captured_.begin(), captured_.end()};
  }

 private:
  void run() {
    std::vector<std::byte> buffer(70000);
    while (!stopping_) {
      bool any = false;
      while (auto n = to_node0_.receive(buffer)) {  // from node 0
        any = true;
        const auto d = std::span(buffer).first(*n);
        (void)to_node1_.send_to(node1_, d);
        std::lock_guard lock(mutex_);
        captured_.emplace_back(d.begin(), d.end());
        if (captured_.size() > 2000) captured_.pop_front();
      }
      while (auto n = to_node1_.receive(buffer)) {  // from node 1
        any = true;
        (void)to_node0_.send_to(node0_, std::span(buffer).first(*n));
      }
      if (!any) (void)to_node0_.wait_readable(1ms), (void)to_node1_.wait_readable(0ms);
    }
  }

  bridge::UdpSocket to_node0_;
  bridge::UdpSocket to_node1_;
  sockaddr_in node0_{};
  sockaddr_in node1_{};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::deque<std::vector<std::byte>> captured_;
  std::thread thread_;
};

// A peer of node 1 that speaks the link protocol correctly but sends bridge
// messages no honest node would.
class HostilePeer {
 public:
  HostilePeer(std::optional<bridge::ClusterKey> key)
      : socket_(bridge::UdpSocket::bind("127.0.0.1", 0)),
        link_({kHostileNode, 1, 0x5eed, 256, std::chrono::microseconds(3000)}) {
    if (key) {
      bridge::SessionConfig config;
      config.self = kHostileNode;
      config.cluster_key = *key;
      const std::array<bridge::NodeId, 1> node1{1};
      sessions_.emplace(config, node1);
    }
  }
  [[nodiscard]] std::uint16_t port() const { return socket_.port(); }
  void aim_at(std::uint16_t node1_port) { node1_ = bridge::make_address("127.0.0.1", node1_port); }

  // Queues one bridge message; keeps the link going until it is taken
  // (false if node 1 does not take it within two seconds).
  bool send(BridgeOp op, std::uint32_t binding, std::span<const std::byte> body = {}) {
    std::vector<std::byte> m(sizeof(BridgeHeader) + body.size());
    const BridgeHeader h{op, binding};
    std::memcpy(m.data(), &h, sizeof(h));
    if (!body.empty()) std::memcpy(m.data() + sizeof(h), body.data(), body.size());
    const auto deadline = Clock::now() + 2s;
    while (link_.send(m) == Status::kFull) {
      if (Clock::now() >= deadline) return false;
      pump(1ms);
    }
    return true;
  }
  // A deaf peer takes acknowledgements but never the messages sent to it,
  // so its receive window closes.
  void deafen() { deaf_ = true; }
  // Runs the link for a while: acks, retransmissions; answers are dropped.
  void pump(std::chrono::milliseconds how_long) {
    const auto until = Clock::now() + how_long;
    std::vector<std::byte> buffer(70000);
    std::vector<std::byte> message;
    do {
      while (auto n = socket_.receive(buffer)) {
        std::span<const std::byte> d = std::span(buffer).first(*n);
        if (sessions_) {
          const auto opened = sessions_->open(d, 1, Clock::now(), send_to_node1());
          if (opened.verdict != bridge::Verdict::kFrame) continue;
          d = opened.frame;
        }
        link_.on_datagram(d);
      }
      while (!deaf_ && link_.receive(message)) ++received_;
      if (sessions_) sessions_->poll(Clock::now(), send_to_node1());
      link_.poll(Clock::now(), [&](std::span<const std::byte> d) {
        if (sessions_) {
          if (sessions_->seal(1, d, sealed_) != Status::kOk) return;  // no session yet: resent later
          d = sealed_;
        }
        (void)socket_.send_to(node1_, d);
      });
      (void)socket_.wait_readable(1ms);
    } while (Clock::now() < until);
  }

 private:
  bridge::UdpSocket socket_;
  bridge::ReliableLink link_;
  bridge::SessionTransmit send_to_node1() {
    return [this](bridge::NodeId, std::span<const std::byte> d) { (void)socket_.send_to(node1_, d); };
  }
  std::optional<bridge::SessionEndpoint> sessions_;
  std::vector<std::byte> sealed_;
  sockaddr_in node1_{};
  std::uint64_t received_ = 0;
  bool deaf_ = false;
};

template <class T>
std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span(&value, 1));
}

class HostileNetworkTest : public ::testing::TestWithParam<bool> {
 protected:
  void start() {
    if (GetParam()) key = bridge::parse_cluster_key(bridge::random_cluster_key_hex());
    hostile = std::make_unique<HostilePeer>(key);
    // Bound here and adopted by the nodes: no other test can take the ports.
    std::array<bridge::UdpSocket, 2> sockets{bridge::UdpSocket::bind("127.0.0.1", 0),
                                             bridge::UdpSocket::bind("127.0.0.1", 0)};
    for (std::uint16_t i = 0; i < 2; ++i) {
      NodeConfig c;
      c.node_id = i;
      c.first_pe = static_cast<PeId>(i * kPesPerNode);
      c.pe_count = kPesPerNode;
      c.bridge_fd = std::move(sockets[i]).release().release();
      c.cluster_key = key;
      const std::uint16_t other = 1 - i;
      const auto relay_port = i == 0 ? relay.port_for_node0() : relay.port_for_node1();
      c.peers.push_back(
          {other, "127.0.0.1", relay_port, static_cast<PeId>(other * kPesPerNode), kPesPerNode});
      if (i == 1)
        c.peers.push_back({kHostileNode, "127.0.0.1", hostile->port(), 2 * kPesPerNode, kPesPerNode});
      nodes[i] = std::make_unique<Node>(c);
    }
    relay.start(nodes[0]->bridge_port(), nodes[1]->bridge_port());
    hostile->aim_at(nodes[1]->bridge_port());
  }

  void launch_workload(double seconds) {
    nodes[1]->launch(role("echo-server", {"3"}));  // PE 8
    nodes[0]->launch(role("echo-client", {std::to_string(seconds)}));
    nodes[1]->launch(role("configure-echo-server", {"8"}, true));
    nodes[0]->launch(role("configure-echo-clients", {"8", "0"}, true));
  }

  void expect_workload_passed() {
    for (auto& n : nodes) {
      ASSERT_TRUE(n->wait_all_exited(120s));
      for (PeId pe = 0; pe < 2; ++pe) {
        const PeId global = static_cast<PeId>((n.get() == nodes[1].get() ? kPesPerNode : 0) + pe);
        EXPECT_EQ(n->exit_code(global), 0) << "PE " << global;
      }
    }
  }

  Relay relay;
  std::optional<bridge::ClusterKey> key;
  std::unique_ptr<HostilePeer> hostile;
  std::unique_ptr<Node> nodes[2];
};

// Strangers: whatever they send is refused before it is opened or parsed.
void attack_from_a_stranger(Relay& relay, std::uint16_t node1_port, std::uint16_t node0_port) {
  const auto stranger = bridge::UdpSocket::bind("127.0.0.1", 0);
  const auto node1 = bridge::make_address("127.0.0.1", node1_port);
  const auto node0 = bridge::make_address("127.0.0.1", node0_port);
  std::mt19937_64 random(42);
  std::vector<std::byte> d;
  for (int i = 0; i < 500; ++i) {
    d.resize(random() % 1500);
    for (auto& b : d) b = static_cast<std::byte>(random());
    (void)stranger.send_to(i % 2 == 0 ? node1 : node0, d);
  }
  (void)stranger.send_to(node1, std::span<const std::byte>{});  // 0 bytes
  (void)stranger.send_to(node1, std::vector<std::byte>(65507, std::byte{0x7f}));
  for (auto copy : relay.captured()) {  // replays, truncations, bit flips of real frames
    (void)stranger.send_to(node1, copy);
    (void)stranger.send_to(node1, std::span(copy).first(copy.size() / 2));
    copy[random() % copy.size()] ^= std::byte{0x10};
    (void)stranger.send_to(node1, copy);
  }
  for (int i = 0; i < 100'000; ++i) {  // a flood
    d.resize(40 + random() % 100);
    for (auto& b : d) b = static_cast<std::byte>(random());
    if (!stranger.send_to(node1, d)) std::this_thread::sleep_for(50us);  // the socket buffer is full
  }
}

// Until node 1 has read what the flood left in its socket: datagrams sent
// into a full buffer are dropped by the kernel before any node sees them.
void wait_until_drained(const Node& node) {
  auto last = node.stats().datagrams_from_strangers;
  for (int quiet_rounds = 0, round = 0; quiet_rounds < 3 && round < 200; ++round) {
    std::this_thread::sleep_for(50ms);
    const auto now = node.stats().datagrams_from_strangers;
    quiet_rounds = now == last ? quiet_rounds + 1 : 0;
    last = now;
  }
}

// On the path (sealed only: plain datagrams promise nothing against an
// attacker who can send from a peer's address): copies of real frames, cut,
// flipped and replayed, from the address node 1 expects node 0 at.
void attack_on_the_path(Relay& relay, std::uint16_t node1_port) {
  const auto node1 = bridge::make_address("127.0.0.1", node1_port);
  std::mt19937_64 random(7);
  for (auto copy : relay.captured()) {
    (void)relay.socket_for_node1().send_to(node1, copy);  // replay
    (void)relay.socket_for_node1().send_to(node1, std::span(copy).first(copy.size() - 1));
    copy[random() % copy.size()] ^= std::byte{0x01};
    (void)relay.socket_for_node1().send_to(node1, copy);
  }
}

// A configured peer that breaks every rule of the bridge protocol.
// Four malformed batches (dropped whole; one of heartbeats, well formed but
// larger than any node makes) and a good one whose message has an unknown op
// (refused like the same message alone): five malformed.
void send_batches(HostilePeer& peer) {
  const auto entry = [](std::vector<std::byte>& body, std::uint16_t length, BridgeOp op) {
    const auto at = body.size();
    body.resize(at + sizeof(length) + sizeof(BridgeHeader));
    std::memcpy(body.data() + at, &length, sizeof(length));
    const BridgeHeader h{op, 0};
    std::memcpy(body.data() + at + sizeof(length), &h, sizeof(h));
  };
  std::vector<std::byte> nested;
  entry(nested, sizeof(BridgeHeader), BridgeOp::kBatch);
  std::vector<std::byte> past_the_end;
  entry(past_the_end, 200, BridgeOp::kHeartbeat);
  std::vector<std::byte> left_over;
  entry(left_over, sizeof(BridgeHeader), BridgeOp::kHeartbeat);
  left_over.push_back(std::byte{1});
  std::vector<std::byte> unknown_inside;
  entry(unknown_inside, sizeof(BridgeHeader), BridgeOp::kHeartbeat);
  entry(unknown_inside, sizeof(BridgeHeader), static_cast<BridgeOp>(99));
  std::vector<std::byte> oversized;
  while (oversized.size() <= kBatchBytes) entry(oversized, sizeof(BridgeHeader), BridgeOp::kHeartbeat);
  for (const auto* body : {&nested, &past_the_end, &left_over, &unknown_inside, &oversized}) {
    peer.send(BridgeOp::kBatch, 0, *body);
  }
}

void misbehave(HostilePeer& peer) {
  peer.pump(300ms);  // the link comes up
  BindBody bind{};
  bind.target_pe = kPesPerNode;  // node 1's echo server, endpoint 0
  bind.target_ep = 0;
  bind.sender_pe = 2 * kPesPerNode;
  bind.credits = 1;
  bind.max_msg_size = 64;
  bind.sender_reply_ep = kNoReplyEp;
  for (std::uint32_t id = 1; id <= 2000; ++id) peer.send(BridgeOp::kBind, id, bytes_of(bind));  // a flood
  for (int i = 0; i < 20; ++i) peer.send(BridgeOp::kBind, 7, bytes_of(bind));  // one id again and again
  peer.pump(500ms);
  std::array<std::byte, vdtu::kHeaderSize + 8> message{};
  for (int i = 0; i < 500; ++i) peer.send(BridgeOp::kMessage, 3, message);  // window: 2
  const CreditBody lie{1'000'000};
  peer.send(BridgeOp::kCredit, 1, bytes_of(lie));
  MemoryAccessBody read{};
  read.target_pe = kGlobalMemoryPe;
  read.op = MemoryOp::kRead;
  read.length = 1'000'000;
  peer.send(BridgeOp::kMemoryRequest, 0, bytes_of(read));  // more than a frame
  peer.send(static_cast<BridgeOp>(99), 0);
  send_batches(peer);
  // 20-byte requests for 64 KB answers it never reads: node 1 stops taking
  // its requests once the answers back up, instead of queueing 128 MB.
  peer.deafen();
  read.length = 64000;
  int sent = 0;
  while (sent < 2000 && peer.send(BridgeOp::kMemoryRequest, 0, bytes_of(read))) ++sent;
  EXPECT_LT(sent, 2000) << "node 1 kept taking requests whose answers pile up";
  peer.pump(1s);
}

TEST_P(HostileNetworkTest, WorkloadCompletesDiscardsAreCountedMemoryStaysBounded) {
  start();
  const auto rss_before = resident_kib("VmRSS");
  launch_workload(6);
  std::this_thread::sleep_for(500ms);  // real frames to copy
  std::thread insider([&] { misbehave(*hostile); });
  attack_from_a_stranger(relay, nodes[1]->bridge_port(), nodes[0]->bridge_port());
  if (GetParam()) {
    wait_until_drained(*nodes[1]);
    attack_on_the_path(relay, nodes[1]->bridge_port());
  }
  insider.join();
  expect_workload_passed();
  const auto s1 = nodes[1]->stats();
  const auto s0 = nodes[0]->stats();
  // The kernel drops what overflows the socket's buffer before the node sees
  // it; what the node sees of the flood it refuses.
  EXPECT_GE(s1.datagrams_from_strangers, 10'000U);
  EXPECT_GT(s0.datagrams_from_strangers, 0U);
  EXPECT_GE(s1.remote_bindings_refused, 2000U - kPesPerNode * 16) << "BINDs beyond the peer's endpoints";
  EXPECT_GE(s1.remote_window_violations, 1U) << "messages beyond the window";
  EXPECT_GE(s1.remote_unknown_binding, 1U) << "credit for a binding that does not exist";
  EXPECT_GE(s1.malformed_requests, 25U) << "a repeated BIND id, an unknown op, malformed batches";
  if (GetParam()) {
    EXPECT_GT(s1.datagrams_forged, 0U) << "flipped and cut copies fail authentication";
    EXPECT_GT(s1.datagrams_replayed, 0U);
  }
  const auto rss_after = resident_kib("VmHWM");
  std::fprintf(stderr,
               "resident: %zu KiB before, %zu KiB at the peak; node 1 refused %lu strangers' datagrams\n",
               rss_before, rss_after, static_cast<unsigned long>(s1.datagrams_from_strangers));
  // Only an uninstrumented build measures the node's own peak; the
  // back-pressure check above holds in every build.
  if (!kSanitized) {
    EXPECT_LT(rss_after, rss_before + 96 * 1024) << "KiB resident: " << rss_before << " -> " << rss_after;
  }
}

// Messages from a peer wait in the node while their receiver's channel is
// full. Each binding holds at most twice its window (64), but a peer may
// have a binding per endpoint of its PEs: 12 bindings of 127 messages of
// 60 KB were 91 MB the node took and kept for a receiver that never reads.
// Now a peer's waiting messages have a budget (32 MiB); beyond it the node
// stops taking the peer's messages and its link's window closes.
TEST_P(HostileNetworkTest, MessagesWaitingForTheirReceiverHaveABudget) {
  start();
  // A receiver on node 1 that never reads: an attached PE whose endpoint 0
  // a kernel (this test, privileged) configures with two 64 KiB slots.
  PeId receiver = 0;
  const auto socket = nodes[1]->attach(true, receiver);
  ControlRequest configure{};
  configure.op = ControlOp::kConfigReceive;
  configure.pe = receiver;
  configure.ep = 0;
  configure.receive = {17, 16};
  ASSERT_TRUE(send_with_fds(socket.get(), bytes_of(configure), {}));
  hostile->pump(300ms);  // the link comes up, the endpoint is there
  BindBody bind{};
  bind.target_pe = receiver;
  bind.target_ep = 0;
  bind.sender_pe = 2 * kPesPerNode;
  bind.credits = kCreditsUnlimited;  // a window of 64: 127 messages each before a violation
  bind.max_msg_size = 60'000;
  bind.sender_reply_ep = kNoReplyEp;
  constexpr std::uint32_t kBindings = 12;
  for (std::uint32_t id = 1; id <= kBindings; ++id)
    ASSERT_TRUE(hostile->send(BridgeOp::kBind, id, bytes_of(bind)));
  std::vector<std::byte> message(60'000);
  int taken = 0;
  for (std::uint32_t id = 1; id <= kBindings; ++id) {
    for (int i = 0; i < 127 && hostile->send(BridgeOp::kMessage, id, message); ++i) ++taken;
  }
  // 32 MiB waiting, 2 messages in each binding's channel, the node's and our
  // link's windows (256 each): about 1100 messages; without the budget all.
  (void)std::fprintf(stderr, "the node took %d of %u messages of 60 KB\n", taken, kBindings * 127);
  EXPECT_LT(taken, 1300) << "node 1 kept taking messages nobody reads";
  EXPECT_GT(taken, 500) << "the budget is not that small";
}

// What node 1 tells a PE attached to it, for `how_long`: true if an
// endpoint of it ended (kEndpointGone) meanwhile; `reply` gets the last answer.
bool endpoint_gone(int socket, std::chrono::milliseconds how_long, NodeMessage* reply = nullptr) {
  std::array<std::byte, sizeof(NodeMessage)> buffer{};
  std::vector<UniqueFd> fds;
  bool gone = false;
  const auto until = Clock::now() + how_long;
  while (Clock::now() < until) {
    std::size_t n = 0;
    if (recv_with_fds(socket, buffer, n, fds, false) != RecvResult::kMessage) {
      std::this_thread::sleep_for(1ms);
      continue;
    }
    NodeMessage m{};
    std::memcpy(&m, buffer.data(), std::min(n, sizeof(m)));
    if (m.kind == NodeMessageKind::kEndpointGone) gone = true;
    if (m.kind == NodeMessageKind::kReply && reply != nullptr) *reply = m;
  }
  return gone;
}

// Node 1's binding ids are one sequence for all its peers. The hostile peer
// answers for a binding node 1 made with node 0: UNBOUND (which ended it),
// REPLY (which fed the sender replies node 0 never sent) and CREDIT. Each
// peer now speaks only for its own bindings; the rest is counted.
TEST_P(HostileNetworkTest, APeerCannotEndOrFeedAnotherPeersBinding) {
  start();
  hostile->pump(300ms);
  PeId sender = 0;
  const auto socket = nodes[1]->attach(true, sender);
  ControlRequest configure{};
  configure.op = ControlOp::kConfigSend;  // endpoint 1 of the attached PE -> node 0's PE 0, endpoint 0
  configure.pe = sender;
  configure.ep = 1;
  configure.send.target_pe = 0;
  configure.send.target_ep = 0;
  configure.send.max_msg_size = 64;
  ASSERT_TRUE(send_with_fds(socket.get(), bytes_of(configure), {}));
  NodeMessage answer{};
  EXPECT_FALSE(endpoint_gone(socket.get(), 300ms, &answer));
  ASSERT_EQ(answer.status, Status::kOk) << "node 1 made binding 1, with node 0";
  const auto before = nodes[1]->stats().remote_unknown_binding;
  const UnboundBody refusal{Status::kInvalidArgument};
  const CreditBody credit{1};
  std::array<std::byte, vdtu::kHeaderSize + 8> reply{};
  ASSERT_TRUE(hostile->send(BridgeOp::kReply, 1, reply));
  ASSERT_TRUE(hostile->send(BridgeOp::kCredit, 1, bytes_of(credit)));
  ASSERT_TRUE(hostile->send(BridgeOp::kUnbound, 1, bytes_of(refusal)));
  hostile->pump(300ms);
  EXPECT_FALSE(endpoint_gone(socket.get(), 500ms)) << "the hostile peer ended node 1's binding with node 0";
  EXPECT_EQ(nodes[1]->stats().remote_unknown_binding, before + 3);
}

// A binding node 1 made with the hostile peer: replies answer requests,
// one each. Replies before any request was sent are a violation, counted
// and dropped; before, each found its way into the sender's reply channel.
TEST_P(HostileNetworkTest, RepliesNeverOutnumberRequests) {
  start();
  hostile->pump(300ms);
  PeId sender = 0;
  const auto socket = nodes[1]->attach(true, sender);
  ControlRequest configure{};
  configure.op = ControlOp::kConfigReceive;  // endpoint 2: where replies arrive
  configure.pe = sender;
  configure.ep = 2;
  configure.receive = {11, 8};
  ASSERT_TRUE(send_with_fds(socket.get(), bytes_of(configure), {}));
  configure.op = ControlOp::kConfigSend;  // endpoint 1 -> the hostile node's PE 16, endpoint 0
  configure.ep = 1;
  configure.send.target_pe = 2 * kPesPerNode;
  configure.send.target_ep = 0;
  configure.send.max_msg_size = 64;
  configure.send.reply_ep = 2;
  ASSERT_TRUE(send_with_fds(socket.get(), bytes_of(configure), {}));
  NodeMessage answer{};
  EXPECT_FALSE(endpoint_gone(socket.get(), 300ms, &answer));
  ASSERT_EQ(answer.status, Status::kOk) << "node 1 made binding 1, with the hostile node";
  hostile->pump(300ms);  // its BIND arrives
  const auto before = nodes[1]->stats().remote_window_violations;
  std::array<std::byte, vdtu::kHeaderSize + 8> reply{};
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(hostile->send(BridgeOp::kReply, 1, reply));
  hostile->pump(300ms);
  EXPECT_EQ(nodes[1]->stats().remote_window_violations, before + 5) << "replies nobody asked for";
}

INSTANTIATE_TEST_SUITE_P(PlainAndSealed, HostileNetworkTest, ::testing::Values(false, true),
                         [](const auto& test) { return test.param ? "Sealed" : "Plain"; });

}  // namespace
}  // namespace vdtu::dtu
