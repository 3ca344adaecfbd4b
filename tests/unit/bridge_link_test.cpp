// The bridge's reliable link: exactly once, in order, through a wire that
// loses, duplicates and reorders; hostile datagrams; back-pressure; and the
// same over real UDP sockets on loopback.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "bridge/reliable_link.hpp"
#include "bridge/udp_socket.hpp"
#include "support/message_pattern.hpp"
#include "support/scale.hpp"

namespace vdtu::bridge {
namespace {

using namespace std::chrono_literals;
using Clock = ReliableLink::Clock;

LinkConfig config(std::uint16_t self, std::uint16_t peer, std::uint64_t session) {
  LinkConfig c;
  c.self = self;
  c.peer = peer;
  c.session = session;
  c.window = 64;
  c.retransmit_after = 2ms;
  return c;
}

std::vector<std::byte> message_for(std::uint64_t seq) {
  std::vector<std::byte> buffer(200);
  std::span<const std::byte> payload;
  const auto h = testing::make_message(seq, buffer, payload);
  std::vector<std::byte> m(sizeof(h) + payload.size());
  std::memcpy(m.data(), &h, sizeof(h));
  std::memcpy(m.data() + sizeof(h), payload.data(), payload.size());
  return m;
}

bool is_message(std::uint64_t seq, const std::vector<std::byte>& m) {
  MessageHeader h{};
  if (m.size() < sizeof(h)) return false;
  std::memcpy(&h, m.data(), sizeof(h));
  return testing::is_expected(seq, h, std::span(m).subspan(sizeof(h)), 200);
}

// Datagrams in flight between two links, delivered lost, doubled and shuffled.
class LossyWire {
 public:
  LossyWire(double loss, double duplicate, std::uint64_t seed)
      : loss_(loss), duplicate_(duplicate), rng_(seed) {}
  void put(std::span<const std::byte> d) {
    if (chance(loss_)) return;
    pool_.emplace_back(d.begin(), d.end());
    if (chance(duplicate_)) pool_.emplace_back(d.begin(), d.end());
  }
  void deliver_to(ReliableLink& link) {
    std::shuffle(pool_.begin(), pool_.end(), rng_);
    for (auto& d : pool_) link.on_datagram(d);
    pool_.clear();
  }

 private:
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  double loss_;
  double duplicate_;
  std::mt19937_64 rng_;
  std::vector<std::vector<std::byte>> pool_;
};

// Both directions at once; a simulated clock advancing 1 ms a round.
void exchange(double loss, double duplicate, std::uint64_t count, std::chrono::microseconds ack_delay = 0us) {
  auto config_a = config(1, 2, 0xa);
  auto config_b = config(2, 1, 0xb);
  config_a.ack_delay = config_b.ack_delay = ack_delay;
  ReliableLink a(config_a);
  ReliableLink b(config_b);
  LossyWire to_b(loss, duplicate, 1);
  LossyWire to_a(loss, duplicate, 2);
  std::uint64_t sent_a = 0, sent_b = 0, got_a = 0, got_b = 0;
  auto now = Clock::now();
  for (int round = 0; round < 2'000'000 && (got_a < count || got_b < count); ++round) {
    while (sent_a < count && a.send(message_for(sent_a)) == Status::kOk) ++sent_a;
    while (sent_b < count && b.send(message_for(sent_b + count)) == Status::kOk) ++sent_b;
    a.poll(now, [&](auto d) { to_b.put(d); });
    b.poll(now, [&](auto d) { to_a.put(d); });
    to_b.deliver_to(b);
    to_a.deliver_to(a);
    std::vector<std::byte> m;
    while (b.receive(m)) ASSERT_TRUE(is_message(got_b++, m)) << "A->B message " << got_b - 1;
    while (a.receive(m)) ASSERT_TRUE(is_message(count + got_a++, m)) << "B->A message " << got_a - 1;
    now += 1ms;
  }
  EXPECT_EQ(got_b, count);
  EXPECT_EQ(got_a, count);
  std::vector<std::byte> extra;
  EXPECT_FALSE(a.receive(extra) || b.receive(extra)) << "nothing arrives twice";
  if (duplicate > 0) {
    EXPECT_GT(b.stats().duplicates, 0U);
  }
  if (loss > 0) {
    EXPECT_GT(a.stats().retransmissions, 0U);
  }
}

TEST(ReliableLink, PerfectWire) { exchange(0, 0, testing::scaled(50'000)); }

TEST(ReliableLink, ExactlyOnceInOrderDespiteLossDuplicationAndReordering) {
  exchange(0.2, 0.1, testing::scaled(50'000));
}

TEST(ReliableLink, HeavyLoss) { exchange(0.6, 0.0, testing::scaled(5'000)); }

// The simulated clock moves 1 ms a round, so delayed acks go out a round late.
TEST(ReliableLink, DelayedAcknowledgementsLoseNothing) {
  exchange(0.2, 0.1, testing::scaled(20'000), 1500us);
}

TEST(ReliableLink, HostileDatagramsAreCountedAndIgnored) {
  ReliableLink a(config(1, 2, 0xa));
  ReliableLink b(config(2, 1, 0xb));
  std::vector<std::vector<std::byte>> wire;
  ASSERT_EQ(a.send(message_for(0)), Status::kOk);
  a.poll(Clock::now(), [&](auto d) { wire.emplace_back(d.begin(), d.end()); });
  ASSERT_EQ(wire.size(), 1U);
  const auto good = wire[0];
  auto with = [&](auto change) {
    auto d = good;
    FrameHeader h{};
    std::memcpy(&h, d.data(), sizeof(h));
    change(h, d);
    std::memcpy(d.data(), &h, sizeof(h));
    return d;
  };
  b.on_datagram(std::span(good).first(10));                         // truncated
  b.on_datagram(with([](FrameHeader& h, auto&) { h.magic = 0; }));  // not ours
  b.on_datagram(with([](FrameHeader& h, auto&) { h.version = 9; }));
  b.on_datagram(with([](FrameHeader& h, auto&) { h.type = static_cast<FrameType>(7); }));
  b.on_datagram(with([](FrameHeader& h, auto&) { h.dst_node = 3; }));     // for someone else
  b.on_datagram(with([](FrameHeader& h, auto&) { h.src_node = 9; }));     // from a stranger
  b.on_datagram(with([](FrameHeader& h, auto&) { h.length += 1; }));      // length lies
  b.on_datagram(with([](FrameHeader& h, auto&) { h.ack = 1'000'000; }));  // acks the future
  std::vector<std::byte> garbage(300, std::byte{0x5a});
  b.on_datagram(garbage);
  EXPECT_EQ(b.stats().malformed, 9U);
  std::vector<std::byte> m;
  EXPECT_FALSE(b.receive(m));
  b.on_datagram(good);
  ASSERT_TRUE(b.receive(m));
  EXPECT_TRUE(is_message(0, m));
  b.on_datagram(with([](FrameHeader& h, auto&) { h.session = 0x99; }));  // a previous incarnation
  EXPECT_EQ(b.stats().stale, 1U);
  b.on_datagram(good);
  EXPECT_EQ(b.stats().duplicates, 1U);
  EXPECT_FALSE(b.receive(m));
}

TEST(ReliableLink, AFullReceiverPushesBackAndLosesNothing) {
  ReliableLink a(config(1, 2, 0xa));
  ReliableLink b(config(2, 1, 0xb));
  auto now = Clock::now();
  auto pump = [&] {
    std::vector<std::vector<std::byte>> to_b, to_a;
    a.poll(now, [&](auto d) { to_b.emplace_back(d.begin(), d.end()); });
    for (auto& d : to_b) b.on_datagram(d);
    b.poll(now, [&](auto d) { to_a.emplace_back(d.begin(), d.end()); });
    for (auto& d : to_a) a.on_datagram(d);
    now += 5ms;
  };
  std::uint64_t sent = 0;
  for (int round = 0; round < 50; ++round) {
    while (a.send(message_for(sent)) == Status::kOk) ++sent;
    pump();
  }
  // The receiver buffers one window (64) and then advertises 0; the sender
  // may keep one probe in flight, which the receiver turns away unacked.
  EXPECT_EQ(sent, 64U + 1U);
  EXPECT_GT(b.stats().beyond_window, 0U);
  EXPECT_EQ(a.send(message_for(sent)), Status::kFull);
  std::uint64_t got = 0;
  std::vector<std::byte> m;
  for (int round = 0; round < 200 && got < 1000; ++round) {
    while (b.receive(m)) ASSERT_TRUE(is_message(got++, m));
    while (sent < 1000 && a.send(message_for(sent)) == Status::kOk) ++sent;
    pump();
  }
  EXPECT_EQ(got, 1000U);
}

TEST(ReliableLink, OverUdpOnLoopbackWithInjectedLoss) {
  auto sa = UdpSocket::bind("127.0.0.1", 0);
  auto sb = UdpSocket::bind("127.0.0.1", 0);
  const auto to_a = make_address("127.0.0.1", sa.port());
  const auto to_b = make_address("127.0.0.1", sb.port());
  ReliableLink a(config(1, 2, 0xa));
  ReliableLink b(config(2, 1, 0xb));
  std::mt19937_64 rng(7);
  auto lossy = [&](const UdpSocket& s, const sockaddr_in& to) {
    return [&s, &to, &rng](std::span<const std::byte> d) {
      if (rng() % 10 != 0) (void)s.send_to(to, d);  // 10 % lost on the way out; UDP may drop too
    };
  };
  const std::uint64_t count = testing::scaled(20'000);
  std::uint64_t sent = 0, got = 0;
  std::vector<std::byte> buffer(70'000);
  const auto deadline = Clock::now() + 60s;
  while (got < count && Clock::now() < deadline) {
    while (sent < count && a.send(message_for(sent)) == Status::kOk) ++sent;
    a.poll(Clock::now(), lossy(sa, to_b));
    b.poll(Clock::now(), lossy(sb, to_a));
    (void)sb.wait_readable(1ms);
    while (auto n = sb.receive(buffer)) b.on_datagram(std::span(buffer).first(std::min(*n, buffer.size())));
    while (auto n = sa.receive(buffer)) a.on_datagram(std::span(buffer).first(std::min(*n, buffer.size())));
    std::vector<std::byte> m;
    while (b.receive(m)) ASSERT_TRUE(is_message(got++, m));
  }
  EXPECT_EQ(got, count);
  EXPECT_GT(a.stats().retransmissions, 0U);
}

// A peer that went silent gets fewer and fewer resends, not one every
// retransmit_after; once it answers again the pace is back to normal.
TEST(ReliableLink, RetransmissionsBackOffWhileThePeerIsSilent) {
  ReliableLink a(config(1, 2, 0xa));
  ReliableLink b(config(2, 1, 0xb));
  ASSERT_EQ(a.send(message_for(0)), Status::kOk);
  auto now = Clock::now();
  std::vector<std::vector<std::byte>> wire;
  for (int ms = 0; ms < 1000; ++ms, now += 1ms)
    a.poll(now, [&](auto d) { wire.emplace_back(d.begin(), d.end()); });
  // Resent at 2, 6, 14, 30, 62, 126, 254 ms, then every 250 ms: 9 in a
  // second instead of 500.
  EXPECT_EQ(a.stats().retransmissions, 9U);
  for (const auto& d : wire) b.on_datagram(d);
  b.poll(now, [&](auto d) { a.on_datagram(d); });
  ASSERT_EQ(a.in_flight(), 0U);
  ASSERT_EQ(a.send(message_for(1)), Status::kOk);
  for (int ms = 0; ms < 10; ++ms, now += 1ms) a.poll(now, [](auto) {});
  EXPECT_EQ(a.stats().retransmissions, 9U + 2U)
      << "after progress the wait starts at 2 ms again (resent at 2, 6)";
}

TEST(UdpSocket, RejectsNonAddresses) { EXPECT_THROW(make_address("localhost:x", 1), std::invalid_argument); }

// The round trip is the time from a frame's (only) transmission to the
// acknowledgement that retires it; a retransmitted frame gives no sample.
TEST(ReliableLinkRtt, SamplesFramesSentOnceAndSmoothsThem) {
  ReliableLink a(config(1, 2, 0xa));
  ReliableLink b(config(2, 1, 0xb));
  std::vector<std::vector<std::byte>> to_b;
  std::vector<std::vector<std::byte>> to_a;
  const auto into = [](auto& v) {
    return [&v](std::span<const std::byte> d) { v.emplace_back(d.begin(), d.end()); };
  };
  const auto t0 = Clock::now();
  ASSERT_EQ(a.send(message_for(0)), Status::kOk);
  a.poll(t0, into(to_b));
  for (auto& d : to_b) b.on_datagram(d, t0);
  b.poll(t0, into(to_a));
  for (auto& d : to_a) a.on_datagram(d, t0 + 5ms);
  EXPECT_EQ(a.stats().rtt_samples, 1U);
  EXPECT_EQ(a.stats().rtt_last, 5ms);
  EXPECT_EQ(a.stats().rtt_smoothed, 5ms);

  // A second frame, 13 ms: the smoothed value moves an eighth of the way.
  to_b.clear();
  to_a.clear();
  ASSERT_EQ(a.send(message_for(1)), Status::kOk);
  a.poll(t0 + 10ms, into(to_b));
  for (auto& d : to_b) b.on_datagram(d, t0 + 10ms);
  b.poll(t0 + 10ms, into(to_a));
  for (auto& d : to_a) a.on_datagram(d, t0 + 23ms);
  EXPECT_EQ(a.stats().rtt_samples, 2U);
  EXPECT_EQ(a.stats().rtt_last, 13ms);
  EXPECT_EQ(a.stats().rtt_smoothed, 6ms);  // (7 * 5 + 13) / 8

  // A third, lost once and resent: its acknowledgement is no sample.
  to_b.clear();
  to_a.clear();
  ASSERT_EQ(a.send(message_for(2)), Status::kOk);
  a.poll(t0 + 30ms, [](std::span<const std::byte>) {});  // lost
  a.poll(t0 + 40ms, into(to_b));                         // the retransmission
  for (auto& d : to_b) b.on_datagram(d, t0 + 40ms);
  b.poll(t0 + 40ms, into(to_a));
  for (auto& d : to_a) a.on_datagram(d, t0 + 41ms);
  EXPECT_EQ(a.stats().retransmissions, 1U);
  EXPECT_EQ(a.stats().rtt_samples, 2U);
  EXPECT_EQ(a.in_flight(), 0U);
}

// An acknowledgement waits up to ack_delay for a DATA frame to carry it;
// duplicates and a reopened window are answered at once; flush_ack sends
// whatever waits.
TEST(ReliableLinkAck, WaitsForADataFrameToCarryItThenGoesAlone) {
  auto config_b = config(2, 1, 0xb);
  config_b.ack_delay = 50us;
  ReliableLink a(config(1, 2, 0xa));
  ReliableLink b(config_b);
  std::vector<std::vector<std::byte>> to_b;
  std::vector<std::vector<std::byte>> to_a;
  const auto into = [](auto& v) {
    return [&v](std::span<const std::byte> d) { v.emplace_back(d.begin(), d.end()); };
  };
  const auto type_of = [](const std::vector<std::byte>& d) {
    FrameHeader h{};
    std::memcpy(&h, d.data(), sizeof(h));
    return h.type;
  };
  const auto t0 = Clock::now();
  ASSERT_EQ(a.send(message_for(0)), Status::kOk);
  a.poll(t0, into(to_b));
  ASSERT_EQ(to_b.size(), 1U);
  b.on_datagram(to_b[0], t0);
  EXPECT_TRUE(b.ack_due());
  b.poll(t0 + 49us, into(to_a));
  EXPECT_TRUE(to_a.empty()) << "within the delay, the ack waits";
  // A frame of B's own carries it.
  ASSERT_EQ(b.send(message_for(1)), Status::kOk);
  b.poll(t0 + 49us, into(to_a));
  ASSERT_EQ(to_a.size(), 1U);
  EXPECT_EQ(type_of(to_a[0]), FrameType::kData);
  EXPECT_FALSE(b.ack_due());
  a.on_datagram(to_a[0], t0 + 50us);
  EXPECT_EQ(a.in_flight(), 0U) << "the data frame retired A's frame";

  // Nothing to carry it: it goes alone once the delay passed.
  to_a.clear();
  to_b.clear();
  ASSERT_EQ(a.send(message_for(2)), Status::kOk);
  a.poll(t0 + 100us, into(to_b));
  b.on_datagram(to_b[0], t0 + 100us);
  b.poll(t0 + 120us, into(to_a));
  EXPECT_TRUE(to_a.empty());
  b.poll(t0 + 150us, into(to_a));
  ASSERT_EQ(to_a.size(), 1U);
  EXPECT_EQ(type_of(to_a[0]), FrameType::kAck);

  // A duplicate is answered at once: its sender is already resending.
  to_a.clear();
  b.on_datagram(to_b[0], t0 + 200us);
  b.poll(t0 + 200us, into(to_a));
  ASSERT_EQ(to_a.size(), 1U);
  EXPECT_EQ(type_of(to_a[0]), FrameType::kAck);

  // flush_ack sends a waiting one regardless of the delay.
  to_a.clear();
  to_b.clear();
  ASSERT_EQ(a.send(message_for(3)), Status::kOk);
  a.poll(t0 + 300us, into(to_b));
  b.on_datagram(to_b[0], t0 + 300us);
  b.flush_ack(into(to_a));
  ASSERT_EQ(to_a.size(), 1U);
  EXPECT_FALSE(b.ack_due());
  a.on_datagram(to_a[0], t0 + 301us);
  EXPECT_EQ(a.in_flight(), 0U);
}

}  // namespace
}  // namespace vdtu::bridge
