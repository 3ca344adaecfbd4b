// The node's small parts that decide speed without deciding semantics: the
// channels made ahead of need, whom an update wakes, and the bridge's batches.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <set>
#include <thread>
#include <vector>

#include "node/bridge_batch.hpp"
#include "node/bridge_messages.hpp"
#include "node/channel_pool.hpp"
#include "node/wake_reasons.hpp"
#include "protocol/pe_page.hpp"
#include "vdtu/mapped_region.hpp"

namespace vdtu::dtu {
namespace {

std::vector<std::byte> bridge_message(BridgeOp op, std::uint32_t binding, std::size_t body_bytes, int fill) {
  std::vector<std::byte> m(sizeof(BridgeHeader) + body_bytes, static_cast<std::byte>(fill));
  const BridgeHeader h{op, binding};
  std::memcpy(m.data(), &h, sizeof(h));
  return m;
}

std::vector<std::vector<std::byte>> unpacked(const std::vector<std::byte>& batch, bool& well_formed) {
  std::vector<std::vector<std::byte>> out;
  well_formed =
      for_each_in_batch(std::span(batch).subspan(sizeof(BridgeHeader)),
                        [&](std::span<const std::byte> m) { out.emplace_back(m.begin(), m.end()); });
  return out;
}

TEST(BridgeBatch, PacksWhatFitsOneEthernetFrameAndUnpacksItInOrder) {
  std::deque<std::vector<std::byte>> queue;
  queue.push_back(bridge_message(BridgeOp::kMessage, 7, 826, 1));  // a kernelcall
  queue.push_back(bridge_message(BridgeOp::kCredit, 9, 4, 2));
  queue.push_back(bridge_message(BridgeOp::kMessage, 7, 600, 3));  // would pass kBatchBytes
  ASSERT_EQ(batchable(queue), 2U);
  const auto batch = make_batch(queue, 2);
  EXPECT_LE(batch.size(), kBatchBytes);
  BridgeHeader h{};
  std::memcpy(&h, batch.data(), sizeof(h));
  EXPECT_EQ(h.op, BridgeOp::kBatch);
  bool well_formed = false;
  const auto messages = unpacked(batch, well_formed);
  EXPECT_TRUE(well_formed);
  ASSERT_EQ(messages.size(), 2U);
  EXPECT_EQ(messages[0], queue[0]);
  EXPECT_EQ(messages[1], queue[1]);

  queue.pop_front();
  queue.pop_front();
  EXPECT_EQ(batchable(queue), 1U) << "a message alone is no batch";
  queue.front() = bridge_message(BridgeOp::kMessage, 7, 60'000, 4);
  queue.push_back(bridge_message(BridgeOp::kCredit, 9, 4, 5));
  EXPECT_EQ(batchable(queue), 1U) << "a message larger than a batch travels alone";
}

TEST(BridgeBatch, AMalformedBatchDeliversNothing) {
  std::deque<std::vector<std::byte>> queue;
  queue.push_back(bridge_message(BridgeOp::kCredit, 1, 4, 1));
  queue.push_back(bridge_message(BridgeOp::kCredit, 2, 4, 2));
  const auto good = make_batch(queue, 2);
  const auto rejected = [](const std::vector<std::byte>& batch) {
    bool well_formed = true;
    const auto messages = unpacked(batch, well_formed);
    return !well_formed && messages.empty();
  };
  auto truncated = good;
  truncated.pop_back();
  EXPECT_TRUE(rejected(truncated)) << "the last length runs past the end";
  auto trailing = good;
  trailing.push_back(std::byte{1});
  EXPECT_TRUE(rejected(trailing)) << "half a length left over";
  auto short_entry = good;
  const std::uint16_t too_short = sizeof(BridgeHeader) - 1;
  std::memcpy(short_entry.data() + sizeof(BridgeHeader), &too_short, sizeof(too_short));
  EXPECT_TRUE(rejected(short_entry)) << "an entry shorter than a bridge header";
  auto nested = good;
  nested[sizeof(BridgeHeader) + 2] = static_cast<std::byte>(BridgeOp::kBatch);
  EXPECT_TRUE(rejected(nested)) << "a batch inside a batch";
  std::deque<std::vector<std::byte>> many;
  for (int i = 0; i < 200; ++i) many.push_back(bridge_message(BridgeOp::kCredit, 1, 4, 1));
  EXPECT_TRUE(rejected(make_batch(many, many.size())))
      << "larger than any sender makes: more than kBatchBytes";
  bool well_formed = false;
  EXPECT_TRUE(unpacked(std::vector<std::byte>(sizeof(BridgeHeader)), well_formed).empty());
  EXPECT_TRUE(well_formed) << "an empty batch is well formed and carries nothing";
}

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
