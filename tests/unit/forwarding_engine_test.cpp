// The forwarding engine with real shared-memory ports, driven round by round
// with a clock the test sets; the test plays each port's client through the
// port's own rings (as a client process would, only in this process).
#include <gtest/gtest.h>

#include <cstring>

#include "net/forwarding_engine.hpp"
#include "net/shm_port.hpp"
#include "support/ethernet.hpp"

namespace vdtu::net {
namespace {

using testing::ethernet_frame;
using testing::mac;
using Frame = std::vector<std::byte>;

// The client's side of a port: its two rings, attached to the port's fds.
class TestClient {
 public:
  explicit TestClient(const ShmPort& port)
      : to_(attach(port.client_fds()[0], port.client_fds()[1], port.geometry())),
        from_(attach(port.client_fds()[2], port.client_fds()[3], port.geometry())),
        producer_(to_),
        consumer_(from_) {}

  Status send(const Frame& frame) {
    MessageHeader header{};
    return producer_.try_send(header, frame);
  }
  std::vector<Frame> receive_all() {
    std::vector<Frame> frames;
    MessageView m;
    while (consumer_.try_fetch(m) == Status::kOk) {
      frames.emplace_back(m.payload.begin(), m.payload.end());
      consumer_.ack();
    }
    return frames;
  }
  SharedChannel& to_switch() { return to_; }

 private:
  static SharedChannel attach(int memfd, int eventfd, ChannelGeometry g) {
    return SharedChannel::attach(UniqueFd(::dup(memfd)), UniqueFd(::dup(eventfd)), g);
  }
  SharedChannel to_;
  SharedChannel from_;
  Producer producer_;
  Consumer consumer_;
};

class Engine : public ::testing::Test {
 protected:
  void make_engine(std::uint32_t table_capacity = 4096, std::uint32_t aging = 300) {
    EngineSettings s;
    s.table.capacity = table_capacity;
    s.table.aging = std::chrono::seconds(aging);
    s.table.seed = 1;
    engine_ = std::make_unique<ForwardingEngine>(s);
  }
  void SetUp() override { make_engine(); }

  PortId add_port(std::uint32_t mtu = 1500, std::vector<MacAddress> allowed = {}, std::uint32_t slots = 64) {
    std::string name = "p";
    name += std::to_string(clients_.size());  // not "p" + ...: g++ 12 -O3 warns falsely (-Wrestrict)
    const auto id = engine_->reserve({name, mtu, std::move(allowed)});
    auto port = std::make_unique<ShmPort>(mtu, slots, UniqueFd{}, "test");
    if (clients_.size() <= id) clients_.resize(id + 1U);
    clients_[id] = std::make_unique<TestClient>(*port);
    engine_->attach(id, std::move(port));
    return id;
  }
  TestClient& client(PortId id) { return *clients_.at(id); }
  PortCounters& counters(PortId id) { return engine_->port(id)->counters(); }
  void round(Seconds t = 1) { engine_->poll(ForwardingEngine::Clock::time_point(std::chrono::seconds(t))); }
  // Sends one frame from a port and forwards it.
  void send(PortId from, const Frame& frame, Seconds t = 1) {
    ASSERT_EQ(client(from).send(frame), Status::kOk);
    round(t);
  }
  // How many frames each port received since the last call.
  std::vector<std::size_t> received() {
    std::vector<std::size_t> counts;
    for (auto& c : clients_) counts.push_back(c ? c->receive_all().size() : 0);
    return counts;
  }

  std::unique_ptr<ForwardingEngine> engine_;
  std::vector<std::unique_ptr<TestClient>> clients_;
};

using Counts = std::vector<std::size_t>;

TEST_F(Engine, UnknownUnicastFloodsToEveryOtherPortOnly) {
  const auto a = add_port();
  add_port();
  add_port();
  send(a, ethernet_frame(mac(0xb), mac(0xa)));
  EXPECT_EQ(received(), (Counts{0, 1, 1}));
  EXPECT_EQ(engine_->counters().unknown_unicast, 1U);
  EXPECT_EQ(counters(a).flooded, 1U);
}

TEST_F(Engine, LearnedDestinationGetsTheFrameAlone) {
  const auto a = add_port();
  const auto b = add_port();
  add_port();
  send(b, ethernet_frame(mac(0xa), mac(0xb)));  // b's address learned
  received();
  const auto frame = ethernet_frame(mac(0xb), mac(0xa), 100, 7);
  send(a, frame);
  auto frames = client(b).receive_all();
  ASSERT_EQ(frames.size(), 1U);
  EXPECT_EQ(frames[0], frame) << "delivered byte for byte";
  EXPECT_EQ(received(), (Counts{0, 0, 0}));
  EXPECT_EQ(counters(b).tx_frames, 1U);
  EXPECT_EQ(counters(b).tx_bytes, frame.size());
  EXPECT_EQ(counters(a).rx_frames, 1U);
}

TEST_F(Engine, BroadcastAndMulticastFloodEverywhereElse) {
  const auto a = add_port();
  const auto b = add_port();
  add_port();
  send(b, ethernet_frame(mac(0xa), mac(0xb)));
  received();
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0xa)));
  EXPECT_EQ(received(), (Counts{0, 1, 1}));
  send(a, ethernet_frame({{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}}, mac(0xa)));
  EXPECT_EQ(received(), (Counts{0, 1, 1}));
  EXPECT_EQ(engine_->counters().floods, 3U);
}

TEST_F(Engine, NeverSendsAFrameBackWhereItCameFrom) {
  const auto a = add_port();
  add_port();
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0xa)));
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0xc)));  // a second host behind port a
  received();
  send(a, ethernet_frame(mac(0xc), mac(0xa)));
  EXPECT_EQ(received(), (Counts{0, 0}));
  EXPECT_EQ(counters(a).filtered, 1U);
}

TEST_F(Engine, AgedEntriesAreFloodedAgain) {
  make_engine(4096, 300);
  const auto a = add_port();
  const auto b = add_port();
  add_port();
  send(b, ethernet_frame(mac(0xa), mac(0xb)), 1000);
  received();
  send(a, ethernet_frame(mac(0xb), mac(0xa)), 1299);
  EXPECT_EQ(received(), (Counts{0, 1, 0})) << "299 s: still known";
  send(a, ethernet_frame(mac(0xb), mac(0xa)), 1300);
  EXPECT_EQ(received(), (Counts{0, 1, 1})) << "300 s unseen: flooded";
  EXPECT_EQ(engine_->table().counters().aged, 1U);
}

TEST_F(Engine, AnAddressThatShowsUpElsewhereMoves) {
  const auto a = add_port();
  const auto b = add_port();
  const auto c = add_port();
  send(b, ethernet_frame(mac(0xa), mac(0xb)));
  send(c, ethernet_frame(mac(0xa), mac(0xb)));  // the host moved to port c
  received();
  send(a, ethernet_frame(mac(0xb), mac(0xa)));
  EXPECT_EQ(received(), (Counts{0, 0, 1}));
  EXPECT_EQ(engine_->table().counters().moved, 1U);
}

TEST_F(Engine, FullTableEvictsTheOldestAndStillFloodsCorrectly) {
  make_engine(8);
  const auto a = add_port();
  const auto b = add_port();
  const auto c = add_port();
  for (std::uint8_t i = 0; i < 8; ++i)
    send(b, ethernet_frame(MacAddress::broadcast(), mac(0x10 + i)), 10U + i);
  received();
  EXPECT_EQ(engine_->table().size(), 8U);
  send(c, ethernet_frame(MacAddress::broadcast(), mac(0x20)), 30);  // evicts 0x10, seen longest ago
  received();
  EXPECT_EQ(engine_->table().counters().evicted, 1U);
  send(a, ethernet_frame(mac(0x10), mac(0x01)), 31);  // evicts 0x11 to learn 0x01
  EXPECT_EQ(received(), (Counts{0, 1, 1})) << "the forgotten address is flooded";
  send(a, ethernet_frame(mac(0x17), mac(0x01)), 31);
  EXPECT_EQ(received(), (Counts{0, 1, 0})) << "the others are still known";
  send(a, ethernet_frame(mac(0x20), mac(0x01)), 31);
  EXPECT_EQ(received(), (Counts{0, 0, 1}));
}

TEST_F(Engine, StaticAddressesCannotBeClaimedFromAnotherPort) {
  const auto a = add_port();
  const auto b = add_port();
  ASSERT_TRUE(engine_->add_static(mac(0xb), 0, b));
  send(a, ethernet_frame(mac(0xb), mac(0xa)));
  EXPECT_EQ(received(), (Counts{0, 1})) << "forwarded without learning";
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0xb)));  // a claims b's address
  EXPECT_EQ(received(), (Counts{0, 0}));
  EXPECT_EQ(counters(a).dropped(DropReason::kSourcePinned), 1U);
  send(a, ethernet_frame(mac(0xb), mac(0xa)), 100'000);
  EXPECT_EQ(received(), (Counts{0, 1})) << "static entries do not age";
}

TEST_F(Engine, AllowListRefusesOtherSources) {
  const auto a = add_port(1500, {mac(0xa)});
  add_port();
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0xa)));
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0x66)));
  EXPECT_EQ(received(), (Counts{0, 1}));
  EXPECT_EQ(counters(a).dropped(DropReason::kSourceNotAllowed), 1U);
  EXPECT_EQ(engine_->table().size(), 1U) << "the refused source was not learned";
}

TEST_F(Engine, MalformedFramesAreDroppedAndCountedNeverTruncated) {
  const auto a = add_port(1500);
  add_port(1500);
  Frame tiny(13, std::byte{0xff});
  send(a, tiny);
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0xa), 1501));           // 1515 bytes, untagged
  send(a, ethernet_frame(MacAddress::broadcast(), {{0x01, 0, 0, 0, 0, 1}}));  // group source
  EXPECT_EQ(received(), (Counts{0, 0}));
  EXPECT_EQ(counters(a).dropped(DropReason::kTooShort), 1U);
  EXPECT_EQ(counters(a).dropped(DropReason::kTooLong), 1U);
  EXPECT_EQ(counters(a).dropped(DropReason::kBadSource), 1U);
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0xa), 1500, 0, 5));  // 1518 bytes, tagged: fits
  send(a, ethernet_frame(MacAddress::broadcast(), mac(0xa), 1500));        // 1514 bytes: fits
  EXPECT_EQ(received(), (Counts{0, 2}));
  EXPECT_EQ(counters(a).rx_frames, 5U);
}

TEST_F(Engine, AFullDestinationLosesFramesWithoutHoldingUpOthers) {
  const auto a = add_port(1500, {}, 64);
  const auto b = add_port(1500, {}, 4);  // a small ring nobody drains
  const auto c = add_port(1500, {}, 64);
  send(b, ethernet_frame(MacAddress::broadcast(), mac(0xb)));
  send(c, ethernet_frame(MacAddress::broadcast(), mac(0xc)));
  received();
  for (int i = 0; i < 10; ++i) ASSERT_EQ(client(a).send(ethernet_frame(mac(0xb), mac(0xa))), Status::kOk);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(client(a).send(ethernet_frame(mac(0xc), mac(0xa))), Status::kOk);
  round();
  round();
  EXPECT_EQ(client(b).receive_all().size(), 4U);
  EXPECT_EQ(client(c).receive_all().size(), 10U) << "the other destination got everything";
  EXPECT_EQ(counters(b).dropped(DropReason::kQueueFull), 6U);
  EXPECT_EQ(client(a).to_switch().queued(), 0U) << "the source ring was emptied";
}

TEST_F(Engine, FramesOverTheDestinationMtuAreDroppedThere) {
  const auto jumbo = add_port(9000);
  const auto small = add_port(1500);
  send(jumbo, ethernet_frame(MacAddress::broadcast(), mac(0xa), 4000));
  EXPECT_EQ(received(), (Counts{0, 0}));
  EXPECT_EQ(counters(small).dropped(DropReason::kOverMtu), 1U);
}

TEST_F(Engine, StaticAddressOfADisconnectedPortIsNotFlooded) {
  const auto a = add_port();
  add_port();
  const auto away = engine_->reserve({"away", 1500, {}});
  ASSERT_TRUE(engine_->add_static(mac(0xe), 0, away));
  send(a, ethernet_frame(mac(0xe), mac(0xa)));
  EXPECT_EQ(received(), (Counts{0, 0}));
  EXPECT_EQ(counters(a).dropped(DropReason::kNoDestination), 1U);
}

TEST_F(Engine, ABrokenRingShutsDownItsPortAndOthersGoOn) {
  const auto a = add_port();
  const auto bad = add_port();
  const auto c = add_port();
  send(c, ethernet_frame(MacAddress::broadcast(), mac(0xc)));
  received();
  // The client claims that its next slot holds a message far beyond its ring.
  const auto& ch = client(bad).to_switch();
  const MappedRegion raw(ch.memfd(), ch.geometry().total_bytes());
  const std::uint32_t word = 100'000U;
  std::memcpy(raw.data() + 320, &word, sizeof(word));  // slot 0's sequence word
  send(a, ethernet_frame(mac(0xc), mac(0xa)));
  const auto failed = engine_->failed_ports();
  ASSERT_EQ(failed, std::vector<PortId>{bad});
  const auto& failure = engine_->port(bad)->failure();
  ASSERT_TRUE(failure);
  EXPECT_TRUE(failure->misbehaved);
  EXPECT_NE(failure->reason.find("slot sequence outside the ring"), std::string::npos) << failure->reason;
  engine_->detach(bad);
  send(a, ethernet_frame(mac(0xc), mac(0xa)));
  EXPECT_EQ(client(c).receive_all().size(), 2U);
}

TEST_F(Engine, DetachingAPortForgetsWhatItLearned) {
  const auto a = add_port();
  const auto b = add_port();
  add_port();
  send(b, ethernet_frame(MacAddress::broadcast(), mac(0xb)));
  received();
  engine_->detach(b);
  send(a, ethernet_frame(mac(0xb), mac(0xa)));
  EXPECT_EQ(received(), (Counts{0, 0, 1})) << "flooded to who is left";
}

}  // namespace
}  // namespace vdtu::net
