// The seL4 prototype's ring tests, in spirit, plus state-machine checks.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "channel/channel_control.hpp"
#include "support/channel_helpers.hpp"
#include "vdtu/channel.hpp"

namespace vdtu {
namespace {

using testing::active_channel;
using testing::labelled;

std::span<const std::byte> bytes_of(const char* text) {
  return std::as_bytes(std::span(text, std::strlen(text)));
}

TEST(ChannelGeometry, AcceptsPowersOfTwoWithinLimits) {
  EXPECT_FALSE((ChannelGeometry{4, 512}.problem()));
  EXPECT_FALSE((ChannelGeometry{4096, 65536}.problem()));
  EXPECT_FALSE((ChannelGeometry{2, 32}.problem()));
}

TEST(ChannelGeometry, RejectsBadCountsAndSizes) {
  EXPECT_TRUE((ChannelGeometry{3, 512}.problem()));
  EXPECT_TRUE((ChannelGeometry{1, 512}.problem()));
  EXPECT_TRUE((ChannelGeometry{0, 512}.problem()));
  EXPECT_TRUE((ChannelGeometry{4, 8}.problem()));
  EXPECT_TRUE((ChannelGeometry{4, 300}.problem()));
  EXPECT_TRUE((ChannelGeometry{4, 1U << 17}.problem()));
  EXPECT_TRUE((ChannelGeometry{1U << 17, 64}.problem()));
  EXPECT_TRUE((ChannelGeometry{65536, 65536}.problem()));  // 4 GiB ring
  EXPECT_THROW(SharedChannel::create({3, 512}), std::invalid_argument);
}

TEST(ChannelGeometry, TotalSizeIsControlBlockPlusSlotsOfWholeLines) {
  // A slot is its 4-byte sequence word and the message, rounded up to lines.
  EXPECT_EQ((ChannelGeometry{4, 512}.total_bytes()), 320U + 4 * (512 + 64));
  EXPECT_EQ((ChannelGeometry{8, 2048}.total_bytes()), 320U + 8 * (2048 + 64));
  EXPECT_EQ((ChannelGeometry{2, 32}.total_bytes()), 320U + 2 * 64);
  EXPECT_EQ((ChannelGeometry{4, 512}.max_payload()), 512U - 25);
}

TEST(MessageHeader, IsTheGem5LayoutOnTheWire) {
  MessageHeader h{};
  h.flags = 0x11;
  h.sender_core_id = 0x2233;
  h.sender_ep_id = 0x44;
  h.reply_ep_id = 0x55;
  h.length = 0x6677;
  h.sender_vpe_id = 0x8899;
  h.label = 0x0102030405060708ULL;
  h.replylabel = 0x1112131415161718ULL;
  std::array<std::uint8_t, 25> raw{};
  std::memcpy(raw.data(), &h, raw.size());
  const std::array<std::uint8_t, 25> expected{0x11, 0x33, 0x22, 0x44, 0x55, 0x77, 0x66, 0x99, 0x88,
                                              0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x18,
                                              0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11};
  EXPECT_EQ(raw, expected);
}

TEST(Channel, SendAndFetchOneMessageWithEveryHeaderField) {
  auto ch = active_channel({4, 512});
  Producer producer(ch);
  Consumer consumer(ch);
  MessageHeader h{};
  h.flags = kFlagReplyEnabled | kFlagGrantCredits;
  h.sender_core_id = 513;
  h.sender_ep_id = 7;
  h.reply_ep_id = 9;
  h.sender_vpe_id = 42;
  h.label = 0xdeadbeefcafeULL;
  h.replylabel = 0x1234567890ULL;
  ASSERT_EQ(producer.try_send(h, bytes_of("hello DTU")), Status::kOk);
  MessageView m;
  ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
  EXPECT_EQ(+m.header.flags, +h.flags);
  EXPECT_EQ(+m.header.sender_core_id, 513);
  EXPECT_EQ(+m.header.sender_ep_id, 7);
  EXPECT_EQ(+m.header.reply_ep_id, 9);
  EXPECT_EQ(+m.header.length, 9);
  EXPECT_EQ(+m.header.sender_vpe_id, 42);
  EXPECT_EQ(+m.header.label, +h.label);
  EXPECT_EQ(+m.header.replylabel, +h.replylabel);
  EXPECT_EQ(std::memcmp(m.payload.data(), "hello DTU", 9), 0);
  EXPECT_EQ(consumer.ack(), Status::kOk);
  EXPECT_EQ(ch.queued(), 0U);
}

TEST(Channel, FullAfterSlotCountMessagesAndFifoOrder) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  for (std::uint64_t i = 0; i < 4; ++i) {
    ASSERT_EQ(producer.try_send(labelled(i), {}), Status::kOk) << i;
  }
  EXPECT_EQ(producer.try_send({}, {}), Status::kFull);
  for (std::uint64_t i = 0; i < 4; ++i) {
    MessageView m;
    ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
    EXPECT_EQ(+m.header.label, i);
  }
  EXPECT_EQ(producer.try_send({}, {}), Status::kFull) << "fetched but unacked slots stay occupied";
  EXPECT_EQ(consumer.ack(4), Status::kOk);
  EXPECT_EQ(producer.try_send({}, {}), Status::kOk);
}

TEST(Channel, FetchFromEmptyReturnsEmpty) {
  auto ch = active_channel({4, 64});
  Consumer consumer(ch);
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kEmpty);
  EXPECT_EQ(consumer.ack(), Status::kInvalidArgument) << "nothing fetched, nothing to ack";
}

TEST(Channel, OversizedPayloadRejected) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  std::vector<std::byte> big(64 - 25 + 1);
  EXPECT_EQ(producer.try_send({}, big), Status::kTooLarge);
  big.pop_back();
  EXPECT_EQ(producer.try_send({}, big), Status::kOk);
  std::uint32_t granted = 0;
  ASSERT_EQ(producer.try_reserve(1, granted), Status::kOk);
  MessageHeader h{};
  h.length = 40;
  EXPECT_EQ(producer.finish(0, h), Status::kTooLarge);
}

TEST(Channel, WrapsAroundManyTimes) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  std::uint64_t next_expected = 0;
  for (std::uint64_t i = 0; i < 1000;) {
    for (int k = 0; k < 3; ++k, ++i) {
      ASSERT_EQ(producer.try_send(labelled(i), std::as_bytes(std::span(&i, 1))), Status::kOk);
    }
    MessageView m;
    while (consumer.try_fetch(m) == Status::kOk) {
      EXPECT_EQ(+m.header.label, next_expected++);
      consumer.ack();
    }
  }
  EXPECT_EQ(next_expected, 1002U);
}

TEST(Channel, SecondPartyAttachesAndSeesTheSameState) {
  auto creator = active_channel({8, 128});
  Producer producer(creator);
  ASSERT_EQ(producer.try_send({}, bytes_of("one")), Status::kOk);
  ASSERT_EQ(producer.try_send({}, bytes_of("two")), Status::kOk);

  auto peer = SharedChannel::attach(UniqueFd(::dup(creator.memfd())), UniqueFd(::dup(creator.eventfd())),
                                    creator.geometry());
  EXPECT_EQ(peer.state(), ChannelState::kActive);
  EXPECT_EQ(peer.queued(), 2U);
  Consumer consumer(peer);
  MessageView m;
  ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.payload.data()), m.payload.size()), "one");
  consumer.ack();
  EXPECT_EQ(creator.queued(), 1U) << "the ack is visible through the creator's mapping";
}

TEST(Channel, AttachRejectsMismatchedOrForeignMemory) {
  auto ch = SharedChannel::create({8, 128});
  EXPECT_THROW(SharedChannel::attach(UniqueFd(::dup(ch.memfd())), {}, {16, 128}), std::runtime_error);
  EXPECT_THROW(SharedChannel::attach(UniqueFd(::dup(ch.memfd())), {}, {8, 64}), std::runtime_error);
  EXPECT_THROW(SharedChannel::attach({}, {}, {8, 128}), std::invalid_argument);
  // A plain unsealed memfd could be truncated under us: refused.
  UniqueFd plain(::memfd_create("plain", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(plain.get(), static_cast<off_t>(ChannelGeometry{8, 128}.total_bytes())), 0);
  EXPECT_THROW(SharedChannel::attach(std::move(plain), {}, {8, 128}), std::runtime_error);
}

TEST(Channel, StateMachineConfiguredActiveTerminated) {
  auto ch = SharedChannel::create({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  EXPECT_EQ(ch.state(), ChannelState::kConfigured);
  EXPECT_EQ(producer.try_send({}, {}), Status::kNotActive);
  EXPECT_EQ(ch.activate(), Status::kOk);
  EXPECT_EQ(ch.activate(), Status::kInvalidArgument) << "only configured -> active";
  ASSERT_EQ(producer.try_send({}, bytes_of("queued")), Status::kOk);
  ch.terminate();
  EXPECT_EQ(ch.state(), ChannelState::kTerminated);
  EXPECT_EQ(producer.try_send({}, {}), Status::kTerminated);
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kOk) << "queued messages can be drained";
  consumer.ack();
  EXPECT_EQ(consumer.try_fetch(m), Status::kTerminated);
}

TEST(Channel, TerminationIsAtomicWithRespectToAReservation) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  std::uint32_t granted = 0;
  ASSERT_EQ(producer.try_reserve(1, granted), Status::kOk);
  ASSERT_EQ(producer.finish(0, {}), Status::kOk);
  ch.terminate();  // between reserve and publish
  EXPECT_EQ(producer.publish(1), Status::kTerminated);
  EXPECT_EQ(ch.queued(), 0U) << "no message slipped in after terminate()";
}

TEST(Channel, BatchedSendAndFetch) {
  auto ch = active_channel({16, 128});
  Producer producer(ch);
  Consumer consumer(ch);
  std::vector<std::uint64_t> values(20);
  std::vector<OutgoingMessage> out(20);
  for (std::size_t i = 0; i < out.size(); ++i) {
    values[i] = i;
    out[i].header.label = i;
    out[i].payload = std::as_bytes(std::span(&values[i], 1));
  }
  std::uint32_t sent = 0;
  ASSERT_EQ(producer.try_send_batch(out, sent), Status::kOk);
  EXPECT_EQ(sent, 16U) << "a batch is cut at the free space";
  std::array<MessageView, 32> in{};
  std::uint32_t got = 0;
  ASSERT_EQ(consumer.try_fetch_batch(in, got), Status::kOk);
  ASSERT_EQ(got, 16U);
  for (std::uint32_t i = 0; i < got; ++i) EXPECT_EQ(+in[i].header.label, i);
  EXPECT_EQ(consumer.ack(got), Status::kOk);
  ASSERT_EQ(producer.try_send_batch(std::span(out).subspan(16), sent), Status::kOk);
  EXPECT_EQ(sent, 4U);
}

TEST(Channel, TerminatingAFullRingKeepsEveryQueuedMessage) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  MessageView m;
  for (std::uint64_t i = 0; i < 6; ++i) {  // two laps in, so the end falls on a reused slot
    ASSERT_EQ(producer.try_send(labelled(i), {}), Status::kOk);
    if (i < 2) {
      ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
      ASSERT_EQ(consumer.ack(), Status::kOk);
    }
  }
  ASSERT_EQ(producer.try_send({}, {}), Status::kFull);
  ch.terminate();
  for (std::uint64_t i = 2; i < 6; ++i) {
    ASSERT_EQ(consumer.try_fetch(m), Status::kOk) << i;
    EXPECT_EQ(+m.header.label, i);
    ASSERT_EQ(consumer.ack(), Status::kOk);
  }
  EXPECT_EQ(consumer.try_fetch(m), Status::kTerminated);
  EXPECT_EQ(producer.try_send({}, {}), Status::kTerminated);
  EXPECT_EQ(consumer.try_fetch(m), Status::kTerminated) << "the end stays the end";
}

TEST(Channel, TerminatingTwiceMovesNothing) {
  auto ch = active_channel({4, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  ch.terminate();
  ch.terminate();
  EXPECT_EQ(ch.queued(), 1U);
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kOk);
  EXPECT_EQ(consumer.try_fetch(m), Status::kTerminated);
}

// Termination races a producer that keeps sending: every message it was told
// was sent arrives, in order, and nothing arrives after the end.
TEST(Channel, TerminationRacingAProducerLosesNoAcceptedMessage) {
  for (int round = 0; round < 200; ++round) {
    auto ch = active_channel({8, 64});
    std::atomic<std::uint64_t> accepted{0};
    std::thread sender([&] {
      Producer producer(ch);
      std::array<OutgoingMessage, 3> batch{};
      for (std::uint64_t label = 0;;) {
        for (auto& b : batch) b.header.label = label++;
        std::uint32_t sent = 0;
        const auto st = producer.try_send_batch(batch, sent);
        if (st == Status::kTerminated) return;
        if (st == Status::kOk) {
          accepted += sent;
          label -= 3 - sent;
        } else {
          label -= 3;
          std::this_thread::yield();
        }
      }
    });
    Consumer consumer(ch);
    std::uint64_t received = 0;
    MessageView m;
    for (Status st = Status::kOk; st != Status::kTerminated;) {
      if (received == static_cast<std::uint64_t>(round) * 3) ch.terminate();
      st = consumer.try_fetch(m);
      if (st == Status::kOk) {
        ASSERT_EQ(+m.header.label, received);
        ++received;
        ASSERT_EQ(consumer.ack(), Status::kOk);
      } else {
        ASSERT_TRUE(st == Status::kEmpty || st == Status::kTerminated) << to_string(st);
      }
    }
    sender.join();
    EXPECT_EQ(received, accepted.load()) << "round " << round;
  }
}

// The sequence word holds lap + 1: a message's value differs from its slot's
// free value (the lap before) at every index, the 2^32 wrap included, and the
// first lap's free value is 0, the content of a new memfd.
TEST(Channel, SequenceWordsTellMessageFreeAndStaleApartAcrossTheWrap) {
  using detail::classify;
  using detail::published;
  using detail::SlotState;
  for (const std::uint32_t n : {2U, 4U, 1024U, 65536U}) {
    for (std::uint32_t i = 0; i < n; ++i) EXPECT_EQ(published(i - n, n), 0U) << "first lap, n=" << n;
    for (const std::uint32_t start : {0U, 0U - 3 * n, 0x8000'0000U - n}) {
      for (std::uint32_t k = 0; k < 3 * n && k < 4096; ++k) {
        const std::uint32_t i = start + k;
        ASSERT_EQ(classify(published(i, n), i, n), SlotState::kMessage) << n << " " << i;
        ASSERT_EQ(classify(published(i - n, n), i, n), SlotState::kFree) << n << " " << i;
        ASSERT_EQ(classify(published(i - n, n) | detail::kEndOfStream, i, n), SlotState::kEnd);
        ASSERT_EQ(classify(published(i - 2 * n, n), i, n), SlotState::kCorrupt) << n << " " << i;
        ASSERT_EQ(published(i, n) & detail::kEndOfStream, 0U) << "the end bit stays free";
      }
    }
  }
}

// A ring nobody has used yet costs its control block and nothing more: the
// creator writes no slot (a kernel's many idle channels stay unallocated).
TEST(Channel, ANewRingAllocatesOnlyItsControlBlock) {
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  const std::string policy((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (policy.find("[always]") != std::string::npos || policy.find("[force]") != std::string::npos) {
    GTEST_SKIP() << "shared memory comes in huge pages here: one touch allocates 2 MiB";
  }
  const ChannelGeometry g{1024, 512};
  auto ch = active_channel(g);
  const auto allocated = [&] {
    struct stat st {};
    EXPECT_EQ(::fstat(ch.memfd(), &st), 0);
    return static_cast<std::size_t>(st.st_blocks) * 512;
  };
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  ASSERT_GT(g.total_bytes(), 100 * page);
  EXPECT_LE(allocated(), page) << "of " << g.total_bytes() << " bytes";
  Producer producer(ch);
  Consumer consumer(ch);
  ASSERT_EQ(producer.try_send(labelled(1), bytes_of("one")), Status::kOk);
  MessageView m;
  ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
  EXPECT_LE(allocated(), 2 * page) << "one message touches one more page";
}

}  // namespace
}  // namespace vdtu
