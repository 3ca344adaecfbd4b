// The node's small parts that decide speed without deciding semantics: the
// channels made ahead of need, and whom an update wakes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <thread>

#include "node/channel_pool.hpp"
#include "node/wake_reasons.hpp"
#include "protocol/pe_page.hpp"
#include "vdtu/mapped_region.hpp"

namespace vdtu::dtu {
namespace {

NodeMessage update(NodeMessageKind kind, EpId ep) {
  NodeMessage m{};
  m.kind = kind;
  m.ep = ep;
  return m;
}

TEST(ChannelPool, HandsOutFreshChannelsOfTheAskedGeometryAndRestocksOnlyWhatWasAskedFor) {
  ChannelPool pool;
  EXPECT_FALSE(pool.make_one_ahead());  // nothing asked for yet: nothing to stock
  const ChannelGeometry small{4, 256};
  auto first = pool.take(small);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->geometry().slot_count, 4U);
  EXPECT_EQ(first->geometry().slot_size, 256U);
  EXPECT_EQ(pool.taken_from_shelf(), 0U);

  for (std::size_t i = 0; i < ChannelPool::kPerGeometry; ++i) EXPECT_TRUE(pool.make_one_ahead());
  EXPECT_FALSE(pool.make_one_ahead());  // the shelf is full
  EXPECT_EQ(pool.shelved(), ChannelPool::kPerGeometry);

  std::set<int> memfds{first->memfd()};
  for (std::size_t i = 0; i < ChannelPool::kPerGeometry; ++i) {
    auto ch = pool.take(small);
    EXPECT_EQ(ch->geometry().slot_size, 256U);
    EXPECT_TRUE(memfds.insert(ch->memfd()).second) << "a channel was handed out twice";
  }
  EXPECT_EQ(pool.taken_from_shelf(), ChannelPool::kPerGeometry);
  EXPECT_EQ(pool.shelved(), 0U);
  // An empty shelf still serves, on demand.
  EXPECT_NE(pool.take(small), nullptr);
  EXPECT_EQ(pool.taken_from_shelf(), ChannelPool::kPerGeometry);
}

TEST(ChannelPool, ForgetsTheGeometryAskedForLongestAgo) {
  ChannelPool pool;
  for (std::uint32_t i = 0; i < ChannelPool::kGeometries; ++i) {
    pool.take({4, 64U << i});
    EXPECT_TRUE(pool.make_one_ahead());
  }
  EXPECT_EQ(pool.shelved(), ChannelPool::kGeometries);
  pool.take({8, 64});  // a ninth geometry replaces {4, 64} and its stocked channel
  EXPECT_EQ(pool.shelved(), ChannelPool::kGeometries - 1);
  pool.take({4, 64});  // gone from the shelves: made on demand
  EXPECT_EQ(pool.taken_from_shelf(), 0U);
}

TEST(WakeReasons, NewEndpointsWakeOnlyAPeWaitingForThatEndpoint) {
  WakeReasons reasons;
  reasons.add(update(NodeMessageKind::kSendEndpoint, 3));
  reasons.add(update(NodeMessageKind::kInboundChannel, 5));
  reasons.add(update(NodeMessageKind::kReply, 7));
  EXPECT_FALSE(reasons.end({SleepingFor::kNothing, 0}));
  EXPECT_FALSE(reasons.end({SleepingFor::kMessages, 0}));
  EXPECT_TRUE(reasons.end({SleepingFor::kEndpoint, 3}));
  EXPECT_TRUE(reasons.end({SleepingFor::kEndpoint, 5}));
  EXPECT_FALSE(reasons.end({SleepingFor::kEndpoint, 4}));
  EXPECT_FALSE(reasons.end({SleepingFor::kEndpoint, 7}));  // an answer concerns no endpoint
}

TEST(WakeReasons, ExitsEndEveryWaitALostEndpointEndsAWaitForMessagesOrForIt) {
  WakeReasons exit;
  exit.add(update(NodeMessageKind::kPeExited, 0));
  EXPECT_TRUE(exit.end({SleepingFor::kMessages, 0}));
  EXPECT_TRUE(exit.end({SleepingFor::kEndpoint, 9}));
  EXPECT_FALSE(exit.end({SleepingFor::kNothing, 0}));
  EXPECT_FALSE(exit.end({SleepingFor::kAnswer, 0}));  // the answer wakes it, nothing else

  WakeReasons lost;
  lost.add(update(NodeMessageKind::kEndpointGone, 2));
  EXPECT_TRUE(lost.end({SleepingFor::kMessages, 0}));  // it may be waiting for credits there
  EXPECT_TRUE(lost.end({SleepingFor::kEndpoint, 2}));
  EXPECT_FALSE(lost.end({SleepingFor::kEndpoint, 9}));
  EXPECT_FALSE(lost.end({SleepingFor::kNothing, 0}));
}

TEST(PePage, TheNodeReadsWhatThePeSaysItSleepsFor) {
  auto node_side = PePage::create();
  auto pe_side = PePage::attach(UniqueFd(::dup(node_side.fd())));
  EXPECT_EQ(node_side.sleeper().what, SleepingFor::kNothing);
  pe_side.announce_sleep({SleepingFor::kEndpoint, 200});
  EXPECT_EQ(node_side.sleeper().what, SleepingFor::kEndpoint);
  EXPECT_EQ(node_side.sleeper().ep, 200);
  pe_side.announce_sleep({SleepingFor::kMessages, 0});
  EXPECT_EQ(node_side.sleeper().what, SleepingFor::kMessages);
  pe_side.announce_sleep({});
  EXPECT_EQ(node_side.sleeper().what, SleepingFor::kNothing);
}

TEST(PePage, TheMailboxCarriesOneRequestAndItsAnswer) {
  auto node_side = PePage::create();
  auto pe_side = PePage::attach(UniqueFd(::dup(node_side.fd())));
  std::uint32_t seen = 0;
  EXPECT_FALSE(node_side.has_request(seen));
  EXPECT_FALSE(node_side.take_request(seen).has_value());

  ControlRequest request{};
  request.op = ControlOp::kConfigReceive;
  request.ep = 7;
  EXPECT_FALSE(pe_side.post_request(request, 1));  // the node is awake: no kick needed
  EXPECT_TRUE(node_side.has_request(seen));
  const auto taken = node_side.take_request(seen);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(seen, 1U);
  EXPECT_EQ(taken->op, ControlOp::kConfigReceive);
  EXPECT_EQ(taken->ep, 7);
  EXPECT_FALSE(node_side.take_request(seen).has_value());  // taken once

  EXPECT_FALSE(node_side.post_answer({1, Status::kNoResources, 42}));  // nobody sleeps for it
  EXPECT_EQ(pe_side.answer().id, 1U);
  EXPECT_EQ(pe_side.answer().status, Status::kNoResources);
  EXPECT_EQ(pe_side.answer().pe, 42);
  pe_side.sleep_for_answer(1, std::chrono::seconds(10));  // answered: returns at once

  node_side.set_node_sleeping(true);
  EXPECT_TRUE(pe_side.post_request(request, 2));  // now the node must be kicked
  node_side.set_node_sleeping(false);
}

TEST(PePage, AnAnswerWakesThePeSleepingForIt) {
  auto node_side = PePage::create();
  auto pe_side = PePage::attach(UniqueFd(::dup(node_side.fd())));
  // One sleep with a bound far beyond any scheduling delay: only a lost
  // wake-up makes it last that long (a liveness check, not a speed one).
  constexpr auto kBound = std::chrono::seconds(30);
  std::chrono::steady_clock::duration slept{};
  std::thread asker([&] {
    const auto start = std::chrono::steady_clock::now();
    pe_side.sleep_for_answer(5, kBound);
    slept = std::chrono::steady_clock::now() - start;
  });
  while (node_side.sleeper().what != SleepingFor::kAnswer) std::this_thread::yield();
  EXPECT_TRUE(node_side.post_answer({5, Status::kOk, 0}));
  node_side.wake_answer_sleeper();
  asker.join();
  EXPECT_LT(slept, kBound / 2) << "the wake-up was lost";
  EXPECT_EQ(pe_side.answer().id, 5U);
  EXPECT_EQ(node_side.sleeper().what, SleepingFor::kNothing);
}

// A PE can write anything into its own page: a word the node does not know
// counts as a sleep for messages (woken by losses and exits, as before the
// word existed), never as "not sleeping".
TEST(PePage, AWordThePeScribbledReadsAsASleepForMessages) {
  auto node_side = PePage::create();
  MappedRegion raw(node_side.fd(), 192);  // the lines up to the sleep word's
  constexpr std::size_t kSleepingWord = 128;
  for (const std::uint32_t word : {0xffffffffU, 0x4U, 0x1234567fU}) {
    std::memcpy(raw.data() + kSleepingWord, &word, sizeof(word));
    EXPECT_EQ(node_side.sleeper().what, SleepingFor::kMessages) << std::hex << word;
  }
}

}  // namespace
}  // namespace vdtu::dtu
