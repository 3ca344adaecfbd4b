// A hostile peer: corrupted indices, lengths and state, and a process that
// scribbles random bytes over the whole mapping while the victim works. The
// victim gets errors, never a crash or an access outside the mapping (ASan).
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstring>
#include <random>

#include "support/channel_helpers.hpp"
#include "support/child_process.hpp"
#include "support/message_pattern.hpp"
#include "vdtu/channel.hpp"

namespace vdtu {
namespace {

using testing::active_channel;
using testing::labelled;
using namespace std::chrono_literals;
using testing::ChildProcess;

constexpr std::size_t kStateOffset = 64;
constexpr std::size_t kConsumerIndexOffset = 128;
constexpr std::size_t kSlotsOffset = 320;
constexpr std::size_t kSlotStride = 128;  // for 64-byte slots: the sequence word, then the message
constexpr std::size_t kHeaderOffset = 4;

// The attacker's view: the raw bytes of the mapping.
struct RawView {
  explicit RawView(const SharedChannel& ch) : region(ch.memfd(), ch.geometry().total_bytes()) {}
  template <class T>
  void poke(std::size_t offset, T value) {
    std::memcpy(region.data() + offset, &value, sizeof(value));
  }
  void poke_sequence(std::uint32_t slot, std::uint32_t value) {
    poke<std::uint32_t>(kSlotsOffset + slot * kSlotStride, value);
  }
  MappedRegion region;
};

TEST(ChannelAdversarial, ASequenceBeyondTheRingBreaksTheConsumer) {
  auto ch = active_channel({4, 64});
  Consumer consumer(ch);
  RawView(ch).poke_sequence(0, 1000);
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken);
  EXPECT_EQ(consumer.broken_reason(), "slot sequence outside the ring");
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken) << "broken stays broken";
  EXPECT_EQ(ch.state(), ChannelState::kTerminated) << "the honest side ends the channel";
}

TEST(ChannelAdversarial, OversizedLengthInASlotBreaksTheConsumer) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  RawView(ch).poke<std::uint16_t>(kSlotsOffset + kHeaderOffset + 5, 0xffff);  // header.length
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken);
  EXPECT_EQ(consumer.broken_reason(), "message length exceeds the slot");
}

TEST(ChannelAdversarial, ASlotClaimingAnOlderLapBreaksTheConsumer) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  MessageView m;
  ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
  ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
  // Slot 2 is free for index 2 when it holds the value of the lap before
  // (0 in the first lap); this holds the lap before that (2^30 - 1 for 4 slots).
  RawView(ch).poke_sequence(2, 0x3fff'ffffU);
  EXPECT_EQ(consumer.try_fetch(m), Status::kBroken);
}

TEST(ChannelAdversarial, AForgedEndOnlyEndsTheStream) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  RawView(ch).poke_sequence(1, 0x8000'0000U);  // the first lap's free value, marked
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kOk) << "what came before the mark is delivered";
  EXPECT_EQ(consumer.try_fetch(m), Status::kTerminated);
  EXPECT_EQ(producer.try_send({}, {}), Status::kTerminated) << "the producer learns it at once";
}

TEST(ChannelAdversarial, CorruptStateWordBreaksTheProducer) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  RawView(ch).poke<std::uint32_t>(kStateOffset, 77);
  EXPECT_EQ(producer.try_send({}, {}), Status::kBroken);
  EXPECT_EQ(producer.broken_reason(), "channel state word corrupted");
}

TEST(ChannelAdversarial, ConsumerIndexAheadOfHeadBreaksTheProducer) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  RawView(ch).poke<std::uint32_t>(kConsumerIndexOffset, 9);  // acks messages never sent
  EXPECT_EQ(producer.try_send({}, {}), Status::kBroken);
  EXPECT_EQ(producer.broken_reason(), "consumer index outside the ring");
}

TEST(ChannelAdversarial, ASlotRewrittenUnderTheProducerBreaksIt) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  RawView(ch).poke_sequence(0, 1);  // "message 0 is published", by someone else
  EXPECT_EQ(producer.try_send({}, {}), Status::kBroken);
  EXPECT_EQ(producer.broken_reason(), "slot sequence changed by someone else");
}

TEST(ChannelAdversarial, ALyingConsumerIndexCannotHangTermination) {
  auto ch = active_channel({4, 64});
  RawView(ch).poke<std::uint32_t>(kConsumerIndexOffset, 0x1234'5678);
  ch.terminate();  // must return, although no slot fits the claimed index
  EXPECT_EQ(ch.state(), ChannelState::kTerminated);
}

TEST(ChannelAdversarial, AWipedEndMarkStillEndsTheStream) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  ch.terminate();
  RawView(ch).poke_sequence(1, 0);  // the producer clears the mark
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kOk);
  EXPECT_EQ(consumer.try_fetch(m), Status::kTerminated) << "the consumer reads the state and marks the end";
  EXPECT_EQ(consumer.wait_readable(WaitPolicy{}, 1s), Status::kTerminated) << "and does not wait";
}

TEST(ChannelAdversarial, AProducerRestartedOnAChannelInUseGoesOn) {
  auto ch = active_channel({4, 64});
  Consumer consumer(ch);
  {
    Producer first(ch);
    for (std::uint64_t label = 0; label < 2; ++label) {
      ASSERT_EQ(first.try_send(labelled(label), {}), Status::kOk);
    }
  }
  // The first producer died in a batch: it had stored slot 3's sequence word
  // (lap 0 published: 1) but not yet published slot 2.
  RawView(ch).poke_sequence(3, 1);
  Producer second(ch);
  for (std::uint64_t label = 2; label < 4; ++label) {
    ASSERT_EQ(second.try_send(labelled(label), {}), Status::kOk) << second.broken_reason();
  }
  MessageView m;
  for (std::uint64_t label = 0; label < 4; ++label) {
    ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
    EXPECT_EQ(+m.header.label, label);
  }
  EXPECT_EQ(consumer.try_fetch(m), Status::kEmpty) << "no phantom message from the dead batch";
  EXPECT_EQ(ch.state(), ChannelState::kActive);
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
