// A hostile peer: corrupted indices, lengths and state, and a process that
// scribbles random bytes over the whole mapping while the victim works. The
// victim gets errors, never a crash or an access outside the mapping (ASan).
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstring>
#include <random>

#include "support/child_process.hpp"
#include "support/message_pattern.hpp"
#include "vdtu/channel.hpp"

namespace vdtu {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;

constexpr std::size_t kProducerWordOffset = 64;
constexpr std::size_t kConsumerIndexOffset = 128;
constexpr std::size_t kSlotsOffset = 320;

// The attacker's view: the raw bytes of the mapping.
struct RawView {
  explicit RawView(const SharedChannel& ch) : region(ch.memfd(), ch.geometry().total_bytes()) {}
  template <class T>
  void poke(std::size_t offset, T value) {
    std::memcpy(region.data() + offset, &value, sizeof(value));
  }
  MappedRegion region;
};

SharedChannel active_channel(ChannelGeometry g) {
  auto ch = SharedChannel::create(g);
  EXPECT_EQ(ch.activate(), Status::kOk);
  return ch;
}

TEST(ChannelAdversarial, ProducerIndexBeyondTheRingBreaksTheConsumer) {
  auto ch = active_channel({4, 64});
  Consumer consumer(ch);
  RawView(ch).poke<std::uint64_t>(kProducerWordOffset, (std::uint64_t{2} << 32U) | 1000U);
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken);
  EXPECT_EQ(consumer.broken_reason(), "producer index outside the ring");
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken) << "broken stays broken";
  EXPECT_EQ(ch.state(), ChannelState::kTerminated) << "the honest side ends the channel";
}

TEST(ChannelAdversarial, OversizedLengthInASlotBreaksTheConsumer) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  RawView(ch).poke<std::uint16_t>(kSlotsOffset + 5, 0xffff);  // header.length
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken);
  EXPECT_EQ(consumer.broken_reason(), "message length exceeds the slot");
}

TEST(ChannelAdversarial, ProducerIndexMovingBackwardsBreaksTheConsumer) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  MessageView m;
  ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
  ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
  RawView(ch).poke<std::uint64_t>(kProducerWordOffset, (std::uint64_t{2} << 32U) | 1U);
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken);
}

TEST(ChannelAdversarial, CorruptStateWordBreaksTheConsumer) {
  auto ch = active_channel({4, 64});
  Consumer consumer(ch);
  RawView(ch).poke<std::uint64_t>(kProducerWordOffset, std::uint64_t{77} << 32U);
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken);
}

TEST(ChannelAdversarial, ConsumerIndexAheadOfHeadBreaksTheProducer) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  RawView(ch).poke<std::uint32_t>(kConsumerIndexOffset, 9);  // acks messages never sent
  EXPECT_EQ(producer.try_send({}, {}), Status::kBroken);
  EXPECT_EQ(producer.broken_reason(), "consumer index outside the ring");
}

TEST(ChannelAdversarial, ProducerWordRewrittenUnderTheProducerBreaksIt) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  RawView(ch).poke<std::uint64_t>(kProducerWordOffset, (std::uint64_t{2} << 32U) | 3U);
  EXPECT_EQ(producer.try_send({}, {}), Status::kBroken);
}

// Scribbles random words over the mapping until killed.
int scribble(int memfd, std::size_t size, std::uint64_t seed) {
  MappedRegion region(memfd, size);
  std::mt19937_64 rng(seed);
  for (;;) {
    const auto offset = rng() % (size - 8);
    const auto value = rng();
    std::memcpy(region.data() + offset, &value, 8);
    if (rng() % 4 == 0) {  // aim at the control block more often
      std::memcpy(region.data() + (rng() % 5) * 64, &value, 4);
    }
  }
}

struct Outcomes {
  int ok = 0;
  int broken = 0;
  int other = 0;
  void count(Status st) { ++(st == Status::kOk ? ok : st == Status::kBroken ? broken : other); }
};

TEST(ChannelAdversarial, ScribblingPeerNeverCrashesTheConsumer) {
  Outcomes outcomes;
  std::uint64_t sink = 0;
  std::array<std::byte, 100> payload{};
  for (std::uint64_t round = 0; round < 20; ++round) {
    auto ch = active_channel({8, 128});
    Producer producer(ch);  // honest traffic, so there are slots to read
    Consumer consumer(ch);
    ChildProcess attacker([&] { return scribble(ch.memfd(), ch.geometry().total_bytes(), round); });
    const auto until = std::chrono::steady_clock::now() + 30ms;
    while (std::chrono::steady_clock::now() < until) {
      producer.try_send({}, payload);
      MessageView m;
      Status st = consumer.wait_readable(WaitPolicy{}, 1ms);
      if (st == Status::kOk) st = consumer.try_fetch(m);
      if (st == Status::kOk) {
        sink += testing::checksum(m.payload);  // touch every payload byte
        st = consumer.ack();
      }
      outcomes.count(st);
      if (st == Status::kBroken) break;
    }
  }
  EXPECT_NE(sink, 1U);
  EXPECT_GT(outcomes.broken, 0) << "the scribbler should have been detected at least once";
}

TEST(ChannelAdversarial, ScribblingPeerNeverCrashesTheProducer) {
  Outcomes outcomes;
  std::array<std::byte, 64> payload{};
  for (std::uint64_t round = 100; round < 120; ++round) {
    auto ch = active_channel({8, 128});
    Producer producer(ch);
    ChildProcess attacker([&] { return scribble(ch.memfd(), ch.geometry().total_bytes(), round); });
    const auto until = std::chrono::steady_clock::now() + 30ms;
    while (std::chrono::steady_clock::now() < until) {
      const Status st = producer.send({}, payload, WaitPolicy{}, 1ms);
      outcomes.count(st);
      if (st == Status::kBroken) break;
    }
  }
  EXPECT_GT(outcomes.broken, 0);
}

}  // namespace
}  // namespace vdtu
