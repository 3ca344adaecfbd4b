// Two real processes, millions of messages of random sizes: every message
// arrives exactly once, in order, intact. The child attaches through the fds,
// exactly as a PE does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <vector>

#include "support/child_process.hpp"
#include "support/message_pattern.hpp"
#include "support/scale.hpp"
#include "vdtu/channel.hpp"

namespace vdtu {
namespace {

using testing::ChildProcess;

struct Scenario {
  ChannelGeometry geometry;
  WaitPolicy policy;
  std::uint64_t count;
  bool batched;
  bool producer_pauses;  // forces the consumer to fall asleep now and then
};

int produce(int memfd, int eventfd, const Scenario& s) {
  auto ch = SharedChannel::attach(UniqueFd(::dup(memfd)), UniqueFd(::dup(eventfd)), s.geometry);
  Producer producer(ch);
  std::vector<std::byte> buffer(s.geometry.max_payload());
  for (std::uint64_t seq = 0; seq < s.count; ++seq) {
    std::span<const std::byte> payload;
    const auto h = testing::make_message(seq, buffer, payload);
    if (producer.send(h, payload, s.policy) != Status::kOk) return 2;
    if (s.producer_pauses && seq % 4096 == 0) ::usleep(200);
  }
  return 0;
}

void consume(SharedChannel& ch, const Scenario& s) {
  Consumer consumer(ch);
  std::array<MessageView, 32> batch{};
  std::uint64_t seq = 0;
  while (seq < s.count) {
    ASSERT_EQ(consumer.wait_readable(s.policy, std::chrono::seconds(30)), Status::kOk) << "at " << seq;
    std::uint32_t got = 0;
    const auto wanted = s.batched ? batch.size() : 1;
    ASSERT_EQ(consumer.try_fetch_batch(std::span(batch).first(wanted), got), Status::kOk);
    for (std::uint32_t i = 0; i < got; ++i, ++seq) {
      ASSERT_TRUE(testing::is_expected(seq, batch[i].header, batch[i].payload, s.geometry.max_payload()))
          << "message " << seq << " lost, duplicated, reordered or corrupted";
    }
    ASSERT_EQ(consumer.ack(got), Status::kOk);
  }
  MessageView extra;
  EXPECT_EQ(consumer.try_fetch(extra), Status::kEmpty) << "no message arrives twice";
}

void run(const Scenario& s) {
  auto ch = SharedChannel::create(s.geometry);
  ASSERT_EQ(ch.activate(), Status::kOk);
  ChildProcess child([&] { return produce(ch.memfd(), ch.eventfd(), s); });
  consume(ch, s);
  EXPECT_EQ(child.wait(), 0);
}

TEST(ChannelProcesses, MillionsPolling) {
  run({{256, 256}, WaitPolicy::poll_only(), testing::scaled(4'000'000), true, false});
}

TEST(ChannelProcesses, MillionsAdaptiveOneByOne) {
  run({{64, 512}, WaitPolicy{}, testing::scaled(2'000'000), false, false});
}

TEST(ChannelProcesses, SleepingConsumerAndProducer) {
  run({{32, 1024}, WaitPolicy::sleep_at_once(), testing::scaled(300'000), true, true});
}

TEST(ChannelProcesses, LargeSlots) { run({{16, 65536}, WaitPolicy{}, testing::scaled(40'000), true, false}); }

}  // namespace
}  // namespace vdtu
