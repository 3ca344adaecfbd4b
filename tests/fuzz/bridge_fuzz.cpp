// Datagrams into a real node's bridge over loopback, as the node receives
// them: two nodes (one plain, one sealed with a cluster key) each have the
// fuzzer as their peer node 2. The fuzzer holds that peer's side for real: a
// reliable link and, for the sealed node, a secure session made with the
// key (bridge/session_endpoint). Its script sends arbitrary datagrams from
// the peer's address and from a stranger's, changed and exact copies of what
// the node sent, arbitrary frames through the session, and bridge messages
// (BIND to a receive endpoint that exists, MESSAGE, REPLY, CREDIT, memory
// requests, any op and body) through the link. Findings: any crash or
// sanitizer report; a datagram the node did not count on arrival; a
// datagram the sealed node takes from a stranger, or that it does not count
// as forged, replayed, stale or rejected although nobody sealed it; more
// datagrams counted as forged than were forged (genuine traffic, replays
// and stale handshakes are no forgery).
#include <fuzzer/FuzzedDataProvider.h>
#include <sodium.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "bridge/cluster_key.hpp"
#include "bridge/frame.hpp"
#include "bridge/reliable_link.hpp"
#include "bridge/session_endpoint.hpp"
#include "bridge/udp_socket.hpp"
#include "node/bridge_messages.hpp"
#include "node/node.hpp"
#include "protocol/control_messages.hpp"
#include "protocol/fd_socket.hpp"

namespace {

using namespace vdtu;
using namespace vdtu::dtu;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint16_t kNodeId = 1;
constexpr std::uint16_t kPeerId = 2;
constexpr std::uint32_t kPes = 4;
constexpr PeId kNodeFirstPe = 4;  // the node's PEs: 4..7; the peer's: 8..11
constexpr PeId kPeerFirstPe = 8;

// One node under test and the peer the fuzzer plays.
class Rig {
 public:
  explicit Rig(bool sealed)
      : peer_socket_(bridge::UdpSocket::bind("127.0.0.1", 0)),
        stranger_(bridge::UdpSocket::bind("127.0.0.1", 0)),
        sealed_(sealed) {
    if (sealed) key_ = bridge::parse_cluster_key(bridge::random_cluster_key_hex());
    NodeConfig c;
    c.node_id = kNodeId;
    c.first_pe = kNodeFirstPe;
    c.pe_count = kPes;
    c.endpoints_per_pe = 4;
    c.pe_memory_bytes = 1 << 16;
    c.global_memory_bytes = 1 << 16;
    c.cluster_key = key_;
    c.peer_timeout = std::chrono::hours(1);  // the fuzzer may be slow; silence is not the point
    c.peers.push_back({kPeerId, "127.0.0.1", peer_socket_.port(), kPeerFirstPe, kPes});
    node_ = std::make_unique<Node>(c);
    node_address_ = bridge::make_address("127.0.0.1", node_->bridge_port());
    configure_receiver();
    new_link();
  }

  void run(FuzzedDataProvider& in) {
    for (int op = 0; op < 64 && in.remaining_bytes() > 0; ++op) {
      switch (in.ConsumeIntegralInRange<int>(0, 6)) {
        case 0: raw(in, false); break;
        case 1: raw(in, true); break;
        case 2: copy_of_peer(in); break;
        case 3: frame(in); break;
        case 4:
        case 5: message(in); break;
        default: pump(in.ConsumeIntegralInRange<int>(1, 20) * 1ms); break;
      }
    }
  }

 private:
  // A kernel on the node's PE 4 sets up receive endpoint 0 there, so that
  // BINDs find it.
  void configure_receiver() {
    PeId pe = 0;
    kernel_ = node_->attach(true, pe);
    ControlRequest r{};
    r.op = ControlOp::kConfigReceive;
    r.pe = pe;
    r.ep = 0;
    r.receive = {12, 8};
    r.request_id = 1;
    if (!send_with_fds(kernel_.get(), std::as_bytes(std::span(&r, 1)), {})) std::abort();
  }

  void new_link() {
    link_ = std::make_unique<bridge::ReliableLink>(
        bridge::LinkConfig{kPeerId, kNodeId, ++link_session_, 64, std::chrono::microseconds(2000)});
    if (sealed_) {
      bridge::SessionConfig s;
      s.self = kPeerId;
      s.cluster_key = *key_;
      const std::array<bridge::NodeId, 1> node{kNodeId};
      sessions_.emplace(s, node);
    }
  }

  // Node stats with the counts this target checks.
  struct Counts {
    std::uint64_t received = 0;
    std::uint64_t refused = 0;  // forged, replayed, stale, rejected, from strangers
    std::uint64_t forged = 0;
  };
  [[nodiscard]] Counts counts() const {
    const auto s = node_->stats();
    return {s.datagrams_received, s.datagrams_forged + s.datagrams_replayed + s.datagrams_rejected,
            s.datagrams_forged};
  }

  // Sends `d`; waits until the node counted its arrival. `forgery`: nobody
  // sealed it (sealed node only): it must be refused, and may count as forged.
  void inject(std::span<const std::byte> d, bool from_stranger, bool forgery) {
    const auto before = counts();
    const auto& socket = from_stranger ? stranger_ : peer_socket_;
    if (!socket.send_to(node_address_, d)) return;  // buffer full: not sent
    ++injected_;
    if (forgery) ++forged_;
    const auto deadline = Clock::now() + 5s;
    Counts after = counts();
    const bool must_refuse = from_stranger || (sealed_ && forgery);
    while (after.received - before.received < 1 || (must_refuse && after.refused - before.refused < 1)) {
      if (Clock::now() > deadline) {
        (void)std::fprintf(stderr, "a datagram of %zu bytes (%s) was not counted\n", d.size(),
                           from_stranger ? "stranger" : "peer address");
        std::abort();
      }
      std::this_thread::sleep_for(50us);
      after = counts();
    }
    if (sealed_ && after.forged > initial_forged_ + forged_) {
      (void)std::fprintf(stderr, "%llu datagrams counted as forged, %llu forged\n",
                         static_cast<unsigned long long>(after.forged - initial_forged_),
                         static_cast<unsigned long long>(forged_));
      std::abort();
    }
  }

  void raw(FuzzedDataProvider& in, bool from_stranger) {
    const auto d = in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 1500));
    // Plain, bytes from the peer's address can be a valid frame: no promise.
    inject(d, from_stranger, !from_stranger);
  }

  // What we sent the node, again (a replay: noise, not a forgery) or changed.
  void copy_of_peer(FuzzedDataProvider& in) {
    if (to_node_.empty()) return;
    auto d = to_node_[in.ConsumeIntegralInRange<std::size_t>(0, to_node_.size() - 1)];
    const bool change = in.ConsumeBool() && !d.empty();
    if (change) d[in.ConsumeIntegralInRange<std::size_t>(0, d.size() - 1)] ^= std::byte{0x01};
    inject(d, false, change);
  }

  // Any frame, sealed in our session (sealed) or as it is (plain).
  void frame(FuzzedDataProvider& in) {
    auto f = in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 600));
    if (f.size() >= sizeof(bridge::FrameHeader) && in.ConsumeBool()) {
      bridge::FrameHeader h{};
      std::memcpy(&h, f.data(), sizeof(h));
      h.magic = bridge::kFrameMagic;
      h.version = bridge::kFrameVersion;
      h.src_node = kPeerId;
      h.dst_node = kNodeId;
      h.length = static_cast<std::uint32_t>(f.size() - sizeof(h));
      std::memcpy(f.data(), &h, sizeof(h));
    }
    send_frame(f);
  }

  void send_frame(std::span<const std::byte> f) {
    if (!sealed_) {
      inject(f, false, false);
      return;
    }
    if (sessions_->seal(kNodeId, f, sealed_buffer_) != Status::kOk) return;
    if (to_node_.size() < 32) to_node_.push_back(sealed_buffer_);
    inject(sealed_buffer_, false, false);
  }

  // A bridge message through the link, fields from the fuzzer.
  void message(FuzzedDataProvider& in) {
    const auto op = static_cast<BridgeOp>(in.ConsumeIntegralInRange<int>(0, 10));
    const auto binding = in.ConsumeIntegralInRange<std::uint32_t>(0, 5);
    std::vector<std::byte> body;
    if (op == BridgeOp::kBind && in.ConsumeBool()) {
      BindBody b{};
      b.target_pe = in.ConsumeBool() ? kNodeFirstPe : in.ConsumeIntegral<PeId>();
      b.target_ep = in.ConsumeIntegralInRange<EpId>(0, 4);
      b.sender_pe = kPeerFirstPe;
      b.label = in.ConsumeIntegral<std::uint64_t>();
      b.credits = in.ConsumeBool() ? kCreditsUnlimited : in.ConsumeIntegralInRange<std::uint32_t>(0, 100);
      b.max_msg_size = in.ConsumeIntegralInRange<std::uint32_t>(0, 300);
      b.sender_reply_ep = in.ConsumeBool() ? kNoReplyEp : 1;
      b.reply_slot_size = in.ConsumeBool() ? 256 : in.ConsumeIntegral<std::uint32_t>();
      body.resize(sizeof(b));
      std::memcpy(body.data(), &b, sizeof(b));
    } else {
      body = in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 400));
    }
    std::vector<std::byte> m(sizeof(BridgeHeader) + body.size());
    const BridgeHeader h{op, binding};
    std::memcpy(m.data(), &h, sizeof(h));
    std::copy(body.begin(), body.end(), m.begin() + sizeof(h));
    if (link_->send(m) != Status::kOk) pump(5ms);
    pump(2ms);
  }

  // Runs our side: the node's datagrams in (kept for copies), the link's out.
  void pump(std::chrono::milliseconds how_long) {
    const auto until = Clock::now() + how_long;
    std::vector<std::byte> buffer(70000);
    std::vector<std::byte> message;
    do {
      while (auto n = peer_socket_.receive(buffer)) {
        std::span<const std::byte> d = std::span(buffer).first(*n);
        if (sealed_) {
          const auto opened = sessions_->open(d, kNodeId, Clock::now(), to_node());
          if (opened.verdict != bridge::Verdict::kFrame) continue;
          d = opened.frame;
        }
        if (link_->on_datagram(d) == bridge::ReliableLink::Received::kRejected) continue;
      }
      while (link_->receive(message)) {
      }
      if (sealed_) sessions_->poll(Clock::now(), to_node());
      link_->poll(Clock::now(), [&](std::span<const std::byte> d) {
        if (sealed_) {
          if (sessions_->seal(kNodeId, d, sealed_buffer_) != Status::kOk) return;
          d = sealed_buffer_;
        }
        send_genuine(d);
      });
      (void)peer_socket_.wait_readable(1ms);
    } while (Clock::now() < until);
  }

  bridge::SessionTransmit to_node() {
    return [this](bridge::NodeId, std::span<const std::byte> d) { send_genuine(d); };
  }
  void send_genuine(std::span<const std::byte> d) {
    if (to_node_.size() < 32) to_node_.emplace_back(d.begin(), d.end());
    (void)peer_socket_.send_to(node_address_, d);
  }

 public:
  // Before an input: the counts it starts from.
  void begin() {
    initial_forged_ = counts().forged;
    forged_ = 0;
  }

 private:
  bridge::UdpSocket peer_socket_;
  bridge::UdpSocket stranger_;
  bool sealed_;
  std::optional<bridge::ClusterKey> key_;
  std::unique_ptr<Node> node_;
  sockaddr_in node_address_{};
  UniqueFd kernel_;
  std::unique_ptr<bridge::ReliableLink> link_;
  std::uint64_t link_session_ = 0x5eed;
  std::optional<bridge::SessionEndpoint> sessions_;
  std::vector<std::byte> sealed_buffer_;
  std::vector<std::vector<std::byte>> to_node_;  // genuine datagrams, to replay
  std::uint64_t injected_ = 0;
  std::uint64_t forged_ = 0;
  std::uint64_t initial_forged_ = 0;
};

Rig& rig(bool sealed) {
  // Made once per process (nodes are slow to start); they live until it ends.
  static Rig* plain = new Rig(false);
  static Rig* with_key = new Rig(true);
  return sealed ? *with_key : *plain;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) { return ::sodium_init() < 0 ? 1 : 0; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  auto& r = rig(in.ConsumeBool());
  r.begin();
  r.run(in);
  return 0;
}
