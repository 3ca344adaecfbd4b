// The node's small parts that decide speed without deciding semantics: the
// channels made ahead of need, and whom an update wakes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <set>

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

TEST(WakeReasons, LostEndpointsAndExitsEndEveryWait) {
  for (auto kind : {NodeMessageKind::kEndpointGone, NodeMessageKind::kPeExited}) {
    WakeReasons reasons;
    reasons.add(update(kind, 2));
    EXPECT_TRUE(reasons.end({SleepingFor::kMessages, 0}));
    EXPECT_TRUE(reasons.end({SleepingFor::kEndpoint, 9}));
    EXPECT_FALSE(reasons.end({SleepingFor::kNothing, 0}));
  }
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

// A PE can write anything into its own page: a word the node does not know
// counts as a sleep for messages (woken by losses and exits, as before the
// word existed), never as "not sleeping".
TEST(PePage, AWordThePeScribbledReadsAsASleepForMessages) {
  auto node_side = PePage::create();
  MappedRegion raw(node_side.fd(), 192);
  constexpr std::size_t kSleepingWord = 128;
  for (const std::uint32_t word : {0xffffffffU, 0x3U, 0x1234567fU}) {
    std::memcpy(raw.data() + kSleepingWord, &word, sizeof(word));
    EXPECT_EQ(node_side.sleeper().what, SleepingFor::kMessages) << std::hex << word;
  }
}

}  // namespace
}  // namespace vdtu::dtu
