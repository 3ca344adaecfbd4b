// Sealed bridge datagrams: what the key holder sealed opens once; a changed
// byte, another key, a truncation or a second delivery does not.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "bridge/datagram_seal.hpp"

namespace vdtu::bridge {
namespace {

std::vector<std::byte> bytes(const char* text) {
  std::vector<std::byte> out(std::strlen(text));
  std::memcpy(out.data(), text, out.size());
  return out;
}

class SealTest : public ::testing::Test {
 protected:
  ClusterKey key = parse_cluster_key(random_cluster_key_hex());
  DatagramSealer node1{key, 1};
  DatagramSealer node2{key, 2};
  std::vector<std::byte> plain;
  std::uint32_t sender = 0;

  std::vector<std::byte> sealed(const char* text) {
    std::vector<std::byte> out;
    node1.seal(bytes(text), out);
    return out;
  }
};

TEST_F(SealTest, OpensWhatThePeerSealed) {
  const auto d = sealed("hello");
  EXPECT_EQ(d.size(), 5 + DatagramSealer::kOverhead);
  ASSERT_EQ(node2.open(d, plain, sender), DatagramSealer::Opened::kOk);
  EXPECT_EQ(plain, bytes("hello"));
  EXPECT_EQ(sender, 1U);
  EXPECT_EQ(std::memcmp(d.data() + DatagramSealer::kHeaderBytes, "hello", 5) == 0, false) << "encrypted";
}

TEST_F(SealTest, EveryChangedByteIsAForgery) {
  const auto d = sealed("a datagram worth forging");
  for (std::size_t i = 0; i < d.size(); ++i) {
    auto forged = d;
    forged[i] ^= std::byte{0x01};
    EXPECT_EQ(node2.open(forged, plain, sender), DatagramSealer::Opened::kForged) << "byte " << i;
  }
  EXPECT_EQ(node2.open(d, plain, sender), DatagramSealer::Opened::kOk)
      << "forgeries did not burn the counter";
}

TEST_F(SealTest, AnotherKeyOrATruncationIsRejected) {
  DatagramSealer stranger(parse_cluster_key(random_cluster_key_hex()), 1);
  std::vector<std::byte> d;
  stranger.seal(bytes("hi"), d);
  EXPECT_EQ(node2.open(d, plain, sender), DatagramSealer::Opened::kForged);
  const auto real = sealed("hi");
  EXPECT_EQ(node2.open(std::span(real).first(real.size() - 1), plain, sender),
            DatagramSealer::Opened::kForged);
  EXPECT_EQ(node2.open(std::span(real).first(DatagramSealer::kOverhead - 1), plain, sender),
            DatagramSealer::Opened::kTruncated);
}

TEST_F(SealTest, ASecondDeliveryIsAReplay) {
  const auto d = sealed("once");
  EXPECT_EQ(node2.open(d, plain, sender), DatagramSealer::Opened::kOk);
  EXPECT_EQ(node2.open(d, plain, sender), DatagramSealer::Opened::kReplayed);
}

TEST_F(SealTest, ReorderedDatagramsPassOnceWithinTheWindow) {
  std::vector<std::vector<std::byte>> d;
  for (int i = 0; i < 100; ++i) d.push_back(sealed("x"));
  EXPECT_EQ(node2.open(d[99], plain, sender), DatagramSealer::Opened::kOk);
  EXPECT_EQ(node2.open(d[40], plain, sender), DatagramSealer::Opened::kOk);  // 59 behind: inside
  EXPECT_EQ(node2.open(d[40], plain, sender), DatagramSealer::Opened::kReplayed);
  EXPECT_EQ(node2.open(d[35], plain, sender), DatagramSealer::Opened::kReplayed)
      << "64 behind: too old to tell";
  EXPECT_EQ(node2.open(d[98], plain, sender), DatagramSealer::Opened::kOk);
}

TEST_F(SealTest, SendersHaveTheirOwnWindows) {
  std::vector<std::byte> from1;
  std::vector<std::byte> from3;
  DatagramSealer node3(key, 3);
  node1.seal(bytes("a"), from1);
  node3.seal(bytes("b"), from3);  // a later counter
  EXPECT_EQ(node2.open(from3, plain, sender), DatagramSealer::Opened::kOk);
  EXPECT_EQ(node2.open(from1, plain, sender), DatagramSealer::Opened::kOk);
}

}  // namespace
}  // namespace vdtu::bridge
