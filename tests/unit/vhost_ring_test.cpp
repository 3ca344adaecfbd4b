// The parts of a vhost-user port that face guest memory: the region table's
// translation and the descriptor walker, fed with hostile contents.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "net/vhost/guest_memory.hpp"
#include "net/vhost/split_ring.hpp"

namespace vdtu::net::vhost {
namespace {

constexpr std::uint16_t kNext = 1;
constexpr std::uint16_t kWrite = 2;

TEST(GuestMemory, TranslatesOnlyRangesInsideOneRegion) {
  std::vector<std::byte> low(4096);
  std::vector<std::byte> high(4096);
  GuestMemory m;
  m.add_view({0x1000, 4096, 0x7000, 0}, low);
  m.add_view({0x3000, 4096, 0x9000, 0}, high);
  EXPECT_EQ(m.translate(0x1000, 4096), low.data());
  EXPECT_EQ(m.translate(0x1010, 16), low.data() + 16);
  EXPECT_EQ(m.translate(0x3ff0, 16), high.data() + 0xff0);
  EXPECT_EQ(m.translate(0x1ff0, 32), nullptr) << "runs past the region";
  EXPECT_EQ(m.translate(0x2000, 1), nullptr) << "between regions";
  EXPECT_EQ(m.translate(0x1000, 0), nullptr) << "empty";
  EXPECT_EQ(m.translate(0x1fff, ~std::uint64_t{0}), nullptr) << "length overflows";
  EXPECT_EQ(m.translate(~std::uint64_t{0}, 2), nullptr) << "address wraps";
  EXPECT_EQ(m.translate_user(0x7010, 16), low.data() + 16);
  EXPECT_EQ(m.translate_user(0x1010, 16), nullptr) << "guest and frontend addresses are different spaces";
}

TEST(GuestMemory, RefusesBadRegions) {
  std::vector<std::byte> bytes(4096);
  GuestMemory m;
  EXPECT_THROW(m.add_view({0, 0, 0, 0}, bytes), std::invalid_argument);
  EXPECT_THROW(m.add_view({~std::uint64_t{0} - 10, 4096, 0, 0}, bytes), std::invalid_argument);
  EXPECT_THROW(m.add_view({0, 4096, ~std::uint64_t{0} - 10, 0}, bytes), std::invalid_argument);
  m.add_view({0x1000, 4096, 0, 0}, bytes);
  EXPECT_THROW(m.add_view({0x1800, 4096, 0x10000, 0}, bytes), std::invalid_argument) << "overlap";
  // A region larger than its file would fault (SIGBUS) when touched.
  const int fd = ::memfd_create("vhost-ring-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 8192), 0);
  EXPECT_THROW(m.add({0x100000, 16384, 0x100000, 0}, fd), std::invalid_argument);
  EXPECT_THROW(m.add({0x100000, 8192, 0x100000, 4096}, fd), std::invalid_argument);
  m.add({0x100000, 8192, 0x100000, 0}, fd);
  EXPECT_NE(m.translate(0x100000, 8192), nullptr);
  for (std::uint64_t i = 2; i < GuestMemory::kMaxRegions; ++i) m.add_view({i << 24U, 16, i << 24U, 0}, bytes);
  EXPECT_THROW(m.add_view({0xff000000, 16, 0xff000000, 0}, bytes), std::invalid_argument) << "a ninth region";
  ::close(fd);
}

// A descriptor table of 8 entries at guest 0, buffers behind it.
struct Table {
  std::vector<std::byte> bytes = std::vector<std::byte>(65536);
  GuestMemory memory;
  std::vector<Segment> segments;
  std::uint64_t total = 0;
  Table() { memory.add_view({0, bytes.size(), 0, 0}, bytes); }
  void put(std::uint16_t i, std::uint64_t address, std::uint32_t length, std::uint16_t flags,
           std::uint16_t next) {
    struct {
      std::uint64_t a;
      std::uint32_t l;
      std::uint16_t f, n;
    } d{address, length, flags, next};
    std::memcpy(bytes.data() + std::size_t{16} * i, &d, 16);
  }
  ChainError walk(std::uint32_t head, bool writable = false) {
    return walk_chain(bytes.data(), 8, head, writable, memory, segments, total);
  }
};

TEST(DescriptorWalker, FollowsAChain) {
  Table t;
  t.put(0, 4096, 12, kNext, 3);
  t.put(3, 8192, 100, kNext, 5);
  t.put(5, 9000, 0, 0, 0);  // empty: skipped
  ASSERT_EQ(t.walk(0), ChainError::kNone);
  ASSERT_EQ(t.segments.size(), 2U);
  EXPECT_EQ(t.segments[0].data, t.bytes.data() + 4096);
  EXPECT_EQ(t.segments[1].length, 100U);
  EXPECT_EQ(t.total, 112U);
}

TEST(DescriptorWalker, RefusesWhatAGuestShouldNotWrite) {
  Table t;
  EXPECT_EQ(t.walk(8), ChainError::kHeadOutOfRange);
  t.put(0, 4096, 64, kNext, 1);
  t.put(1, 4096, 64, kNext, 0);
  EXPECT_EQ(t.walk(0), ChainError::kTooLong) << "a loop";
  t.put(0, 4096, 64, kNext, 0);
  EXPECT_EQ(t.walk(0), ChainError::kTooLong) << "a descriptor naming itself";
  t.put(0, 4096, 64, kNext, 9);
  EXPECT_EQ(t.walk(0), ChainError::kNextOutOfRange);
  t.put(0, 65536 - 10, 64, 0, 0);
  EXPECT_EQ(t.walk(0), ChainError::kBadAddress);
  t.put(0, ~std::uint64_t{0} - 4, 64, 0, 0);
  EXPECT_EQ(t.walk(0), ChainError::kBadAddress);
  t.put(0, 4096, 64, kWrite, 0);
  EXPECT_EQ(t.walk(0, false), ChainError::kWrongDirection);
  EXPECT_EQ(t.walk(0, true), ChainError::kNone);
  t.put(0, 4096, 64, 4, 0);
  EXPECT_EQ(t.walk(0), ChainError::kIndirect);
}

TEST(SplitRing, AvailableIndexMayNotRunAhead) {
  std::vector<std::byte> bytes(4096);
  RingLayout layout{8, bytes.data(), bytes.data() + 256, bytes.data() + 512};
  SplitRing ring(layout, 0, true);
  auto set_index = [&](std::uint16_t v) { std::memcpy(bytes.data() + 256 + 2, &v, 2); };
  set_index(8);
  EXPECT_EQ(ring.available(), 8U);
  set_index(9);
  EXPECT_FALSE(ring.available());
  set_index(0xffff);
  EXPECT_FALSE(ring.available()) << "behind is as broken as ahead";
}

TEST(SplitRing, EventIndexDecidesInterrupts) {
  std::vector<std::byte> bytes(4096);
  RingLayout layout{8, bytes.data(), bytes.data() + 256, bytes.data() + 512};
  SplitRing ring(layout, 0, true);
  auto set_used_event = [&](std::uint16_t v) { std::memcpy(bytes.data() + 256 + 4 + 16, &v, 2); };
  set_used_event(5);
  ring.put_used(0, 0);
  EXPECT_FALSE(ring.publish()) << "the guest asked for an interrupt after entry 5 only";
  for (int i = 0; i < 5; ++i) ring.put_used(0, 0);
  EXPECT_TRUE(ring.publish());
  EXPECT_FALSE(ring.publish()) << "nothing new";
  SplitRing plain(layout, 0, false);
  const std::uint16_t no_interrupt = 1;
  std::memcpy(bytes.data() + 256, &no_interrupt, 2);
  plain.put_used(0, 0);
  EXPECT_FALSE(plain.publish());
}

}  // namespace
}  // namespace vdtu::net::vhost
