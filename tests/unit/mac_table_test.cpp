// The MAC table on its own: capacity, eviction order, aging with a clock the
// test sets, moves, static entries, and a long random run against a plain
// std::map as the model (deletion shifts entries between slots).
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "net/mac_table.hpp"

namespace vdtu::net {
namespace {

MacTableSettings settings(std::uint32_t capacity, std::uint32_t aging_seconds = 300) {
  MacTableSettings s;
  s.capacity = capacity;
  s.aging = std::chrono::seconds(aging_seconds);
  s.seed = 42;
  return s;
}

MacKey key(std::uint64_t n, std::uint16_t vlan = 0) { return make_mac_key(0x0200'0000'0000ULL + n, vlan); }

TEST(MacTable, HoldsAtLeast4096EntriesByDefault) {
  MacTable table{MacTableSettings{}};
  EXPECT_GE(table.capacity(), 4096U);
  for (std::uint64_t i = 0; i < 4096; ++i) {
    EXPECT_EQ(table.learn(key(i), static_cast<PortId>(i % 7), 1), LearnOutcome::kLearned);
  }
  EXPECT_EQ(table.size(), 4096U);
  for (std::uint64_t i = 0; i < 4096; ++i) EXPECT_EQ(table.lookup(key(i), 1), static_cast<PortId>(i % 7));
  EXPECT_EQ(table.counters().evicted, 0U);
}

TEST(MacTable, FullTableEvictsTheEntrySeenLongestAgo) {
  MacTable table(settings(4));
  for (std::uint64_t i = 0; i < 4; ++i) table.learn(key(i), 1, static_cast<Seconds>(10 + i));
  table.learn(key(0), 1, 20);  // refreshed: now the newest
  EXPECT_EQ(table.learn(key(9), 2, 21), LearnOutcome::kLearned) << "a full table still learns";
  EXPECT_EQ(table.counters().evicted, 1U);
  EXPECT_FALSE(table.lookup(key(1), 21)) << "key 1 was seen longest ago";
  EXPECT_EQ(table.lookup(key(0), 21), 1);
  EXPECT_EQ(table.lookup(key(9), 21), 2);
  EXPECT_EQ(table.size(), 4U);
}

TEST(MacTable, EntriesAgeOutAfterTheAgingTime) {
  MacTable table(settings(16, 300));
  table.learn(key(1), 3, 1000);
  table.learn(key(2), 3, 1100);
  EXPECT_EQ(table.lookup(key(1), 1299), 3);
  EXPECT_FALSE(table.lookup(key(1), 1300)) << "300 s unseen: gone for lookups at once";
  EXPECT_EQ(table.expire(1300), 1U);
  EXPECT_EQ(table.size(), 1U);
  EXPECT_EQ(table.counters().aged, 1U);
  table.learn(key(2), 3, 1350);  // seen again: the clock starts over
  EXPECT_EQ(table.expire(1600), 0U);
  EXPECT_EQ(table.lookup(key(2), 1600), 3);
  EXPECT_EQ(table.expire(1650), 1U);
  EXPECT_EQ(table.size(), 0U);
}

TEST(MacTable, AnAddressOnAnotherPortMoves) {
  MacTable table(settings(16));
  EXPECT_EQ(table.learn(key(1), 1, 5), LearnOutcome::kLearned);
  EXPECT_EQ(table.learn(key(1), 1, 5), LearnOutcome::kRefreshed);
  EXPECT_EQ(table.learn(key(1), 2, 6), LearnOutcome::kMoved);
  EXPECT_EQ(table.lookup(key(1), 6), 2);
  EXPECT_EQ(table.counters().moved, 1U);
}

TEST(MacTable, VlansKeepSeparateEntries) {
  MacTable table(settings(16));
  table.learn(key(1, 10), 1, 5);
  table.learn(key(1, 20), 2, 5);
  EXPECT_EQ(table.lookup(key(1, 10), 5), 1);
  EXPECT_EQ(table.lookup(key(1, 20), 5), 2);
  EXPECT_FALSE(table.lookup(key(1, 0), 5));
}

TEST(MacTable, StaticEntriesNeverAgeMoveOrGetEvicted) {
  MacTable table(settings(4));
  ASSERT_TRUE(table.add_static(key(7), 1));
  EXPECT_FALSE(table.add_static(key(7), 2)) << "one static address, one port";
  EXPECT_EQ(table.learn(key(7), 2, 5), LearnOutcome::kPinnedElsewhere);
  EXPECT_EQ(table.learn(key(7), 1, 5), LearnOutcome::kRefreshed);
  for (std::uint64_t i = 0; i < 10; ++i) table.learn(key(100 + i), 3, static_cast<Seconds>(10 + i));
  EXPECT_EQ(table.lookup(key(7), 1'000'000), 1);
  EXPECT_EQ(table.expire(1'000'000), 3U);
  EXPECT_EQ(table.size(), 1U);
  EXPECT_EQ(table.static_entries(), 1U);
}

TEST(MacTable, ForgettingAPortRemovesOnlyItsLearnedEntries) {
  MacTable table(settings(64));
  ASSERT_TRUE(table.add_static(key(0), 1));
  for (std::uint64_t i = 1; i <= 30; ++i) table.learn(key(i), static_cast<PortId>(i % 2 + 1), 1);
  EXPECT_EQ(table.forget_port(1), 15U);
  EXPECT_EQ(table.lookup(key(0), 1), 1) << "static entries stay";
  for (std::uint64_t i = 1; i <= 30; ++i) {
    if (i % 2 + 1 == 1) {
      EXPECT_FALSE(table.lookup(key(i), 1));
    } else {
      EXPECT_EQ(table.lookup(key(i), 1), 2);
    }
  }
}

TEST(MacTable, RejectsCapacitiesOutOfRange) {
  EXPECT_THROW(MacTable(settings(0)), std::invalid_argument);
  EXPECT_THROW(MacTable(settings(MacTableSettings::kMaxCapacity + 1)), std::invalid_argument);
}

// Many learns, moves, expiries and port removals on a small, crowded table,
// checked step by step against a map that evicts and ages by the same rules.
TEST(MacTable, AgreesWithASimpleModelOverARandomRun) {
  constexpr std::uint32_t kCapacity = 64;
  constexpr Seconds kAging = 50;
  MacTable table(settings(kCapacity, kAging));
  struct Entry {
    PortId port;
    Seconds seen;
    std::uint64_t order;  // refresh order within a second, as the table's list
  };
  std::map<MacKey, Entry> model;
  std::uint64_t order = 0;
  std::mt19937_64 random(7);
  Seconds now = 1;
  for (int step = 0; step < 200'000; ++step) {
    const auto roll = random() % 100;
    if (roll < 2) now += static_cast<Seconds>(random() % 20);
    const auto k = key(random() % 200, static_cast<std::uint16_t>(random() % 2));
    const auto port = static_cast<PortId>(random() % 4);
    if (roll < 85) {
      table.learn(k, port, now);
      auto it = model.find(k);
      if (it != model.end()) {
        if (it->second.seen != now) it->second = {it->second.port, now, ++order};
        it->second.port = port;
      } else {
        if (model.size() == kCapacity) {
          auto oldest = std::min_element(model.begin(), model.end(), [](const auto& a, const auto& b) {
            return a.second.order < b.second.order;
          });
          model.erase(oldest);
        }
        model[k] = {port, now, ++order};
      }
    } else if (roll < 95) {
      const auto found = table.lookup(k, now);
      const auto it = model.find(k);
      const bool live = it != model.end() && now - it->second.seen < kAging;
      ASSERT_EQ(found.has_value(), live) << "step " << step;
      if (live) {
        ASSERT_EQ(*found, it->second.port) << "step " << step;
      }
    } else if (roll < 99) {
      table.expire(now);
      std::erase_if(model, [&](const auto& e) { return now - e.second.seen >= kAging; });
    } else {
      table.forget_port(port);
      std::erase_if(model, [&](const auto& e) { return e.second.port == port; });
    }
    ASSERT_EQ(table.size(), model.size()) << "step " << step;
  }
}

}  // namespace
}  // namespace vdtu::net
