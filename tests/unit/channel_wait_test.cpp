// Waiting: spin-then-sleep between threads (TSan checks the orderings),
// eventfd integration with epoll, timeouts, and wake-up on termination.
#include <gtest/gtest.h>
#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/spin_budget.hpp"
#include "support/channel_helpers.hpp"
#include "support/message_pattern.hpp"
#include "support/scale.hpp"
#include "vdtu/channel.hpp"

namespace vdtu {
namespace {

using testing::active_channel;
using namespace std::chrono_literals;
using testing::is_expected;
using testing::make_message;

// Producer and consumer threads; both block when they must. Every message
// arrives once, in order, intact.
void run_threads(WaitPolicy policy, std::uint64_t count, ChannelGeometry g) {
  auto ch = active_channel(g);
  std::thread producer_thread([&] {
    Producer producer(ch);
    std::vector<std::byte> buffer(g.slot_size - kHeaderSize);
    for (std::uint64_t seq = 0; seq < count; ++seq) {
      std::span<const std::byte> payload;
      const auto h = make_message(seq, buffer, payload);
      ASSERT_EQ(producer.send(h, payload, policy), Status::kOk);
    }
  });
  Consumer consumer(ch);
  for (std::uint64_t seq = 0; seq < count; ++seq) {
    ASSERT_EQ(consumer.wait_readable(policy), Status::kOk);
    MessageView m;
    ASSERT_EQ(consumer.try_fetch(m), Status::kOk);
    ASSERT_TRUE(is_expected(seq, m.header, m.payload, g.slot_size - kHeaderSize)) << seq;
    ASSERT_EQ(consumer.ack(), Status::kOk);
  }
  producer_thread.join();
}

TEST(ChannelWait, ThreadsPolling) {
  run_threads(WaitPolicy::poll_only(), testing::scaled(400'000), {64, 256});
}

TEST(ChannelWait, ThreadsSleepingAtOnce) {
  run_threads(WaitPolicy::sleep_at_once(), testing::scaled(100'000), {4, 128});
}

TEST(ChannelWait, ThreadsAdaptive) { run_threads(WaitPolicy{}, testing::scaled(200'000), {16, 512}); }

TEST(ChannelWait, ReadTimesOutWhenNothingArrives) {
  auto ch = active_channel({4, 64});
  Consumer consumer(ch);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(consumer.wait_readable(WaitPolicy{}, 20ms), Status::kTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

TEST(ChannelWait, WriteTimesOutWhenFull) {
  auto ch = active_channel({2, 64});
  Producer producer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  EXPECT_EQ(producer.send({}, {}, WaitPolicy{}, 10ms), Status::kTimeout);
}

TEST(ChannelWait, TerminateWakesASleepingConsumer) {
  auto ch = active_channel({4, 64});
  Consumer consumer(ch);
  std::thread closer([&] {
    std::this_thread::sleep_for(20ms);
    ch.terminate();
  });
  EXPECT_EQ(consumer.wait_readable(WaitPolicy::sleep_at_once(), 10s), Status::kTerminated);
  closer.join();
}

TEST(ChannelWait, TerminateWakesABlockedProducer) {
  auto ch = active_channel({2, 64});
  Producer producer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  std::thread closer([&] {
    std::this_thread::sleep_for(20ms);
    ch.terminate();
  });
  EXPECT_EQ(producer.send({}, {}, WaitPolicy::sleep_at_once(), 10s), Status::kTerminated);
  closer.join();
}

TEST(ChannelWait, EventfdWorksWithEpoll) {
  auto ch = active_channel({8, 64});
  Producer producer(ch);
  Consumer consumer(ch);
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ch.eventfd(), &ev), 0);

  ASSERT_TRUE(consumer.arm_event());
  std::array<epoll_event, 1> ready{};
  EXPECT_EQ(::epoll_wait(ep.get(), ready.data(), 1, 0), 0) << "armed and idle: nothing ready";
  std::thread sender([&] { EXPECT_EQ(producer.try_send({}, {}), Status::kOk); });
  EXPECT_EQ(::epoll_wait(ep.get(), ready.data(), 1, 5000), 1);
  sender.join();
  consumer.disarm_event();
  MessageView m;
  EXPECT_EQ(consumer.try_fetch(m), Status::kOk);
  consumer.ack();

  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  EXPECT_FALSE(consumer.arm_event()) << "a queued message must be fetched before sleeping";
}

TEST(ChannelWait, AwakeConsumerCostsTheProducerNoEventfdWrite) {
  auto ch = active_channel({8, 64});
  Producer producer(ch);
  ASSERT_EQ(producer.try_send({}, {}), Status::kOk);
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ch.eventfd(), &ev), 0);
  std::array<epoll_event, 1> ready{};
  EXPECT_EQ(::epoll_wait(ep.get(), ready.data(), 1, 0), 0) << "nobody waited, so nobody was signalled";
}

// The spin budget: wasted windows halve the next one down to a floor, a
// probe every kProbeEvery-th wait polls the whole window, and one wait that
// polling ended restores it.
TEST(SpinBudget, WastedWindowsShrinkProbesAndSuccessRestore) {
  constexpr std::chrono::nanoseconds kFull = 64us;
  SpinBudget budget;
  EXPECT_EQ(budget.window(kFull), kFull) << "a new waiter polls the whole window";
  for (std::uint32_t i = 1; i <= SpinBudget::kMaxHalvings + 3; ++i) budget.wasted();
  EXPECT_EQ(budget.halvings(), SpinBudget::kMaxHalvings) << "the window has a floor";
  std::vector<std::chrono::nanoseconds> windows;
  for (std::uint32_t i = 0; i < 2 * SpinBudget::kProbeEvery; ++i) windows.push_back(budget.window(kFull));
  const auto floor = kFull / (1 << SpinBudget::kMaxHalvings);
  EXPECT_EQ(std::count(windows.begin(), windows.end(), kFull), 2) << "two probes in 2 x kProbeEvery waits";
  EXPECT_EQ(std::count(windows.begin(), windows.end(), floor), 2 * SpinBudget::kProbeEvery - 2);
  EXPECT_EQ(windows[SpinBudget::kProbeEvery - 1], kFull);
  budget.paid_off();
  EXPECT_EQ(budget.window(kFull), kFull);
  budget.wasted();
  EXPECT_EQ(budget.window(kFull), kFull / 2) << "one wasted window halves the next";
  EXPECT_EQ(budget.window(0ns), 0ns) << "a caller that asks for no polling gets none";
}

}  // namespace
}  // namespace vdtu
