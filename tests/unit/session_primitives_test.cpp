// The parts of secure sessions on their own: the replay window against a
// plain model, the key-work budget, cookies, key derivation, MACs and
// sealing, the cluster key's text form.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>

#include "bridge/cluster_key.hpp"
#include "bridge/cookie_mint.hpp"
#include "bridge/replay_window.hpp"
#include "bridge/session_crypto.hpp"
#include "bridge/token_bucket.hpp"

namespace vdtu::bridge {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Window = ReplayWindow<1024>;

TEST(ReplayWindow, EachCounterOnceAndNothingBelowTheWindow) {
  Window w;
  EXPECT_EQ(w.check(0), Window::Check::kNew);
  w.accept(0);
  EXPECT_EQ(w.check(0), Window::Check::kSeen);
  EXPECT_EQ(w.check(5), Window::Check::kNew) << "check alone remembers nothing";
  EXPECT_EQ(w.check(5), Window::Check::kNew);
  w.accept(2000);
  EXPECT_EQ(w.check(976), Window::Check::kTooOld);
  EXPECT_EQ(w.check(977), Window::Check::kNew);
  EXPECT_EQ(w.check(0), Window::Check::kTooOld);
  w.accept(2000 + 65);  // across a word boundary: the slots passed over are free again
  for (std::uint64_t c = 2001; c < 2065; ++c) EXPECT_EQ(w.check(c), Window::Check::kNew) << c;
  EXPECT_EQ(w.check(2000), Window::Check::kSeen);
  w.accept(1'000'000);  // far ahead: everything before is forgotten
  EXPECT_EQ(w.check(1'000'000 - 1023), Window::Check::kNew);
  EXPECT_EQ(w.check(1'000'000 - 1024), Window::Check::kTooOld);
}

TEST(ReplayWindow, AgreesWithAPlainModel) {
  std::mt19937_64 random(11);
  for (int run = 0; run < 20; ++run) {
    Window w;
    std::set<std::uint64_t> seen;
    std::uint64_t highest = 0;
    std::uint64_t base = 0;
    for (int i = 0; i < 20'000; ++i) {
      // Mostly near the top, sometimes far behind, sometimes a jump ahead.
      const auto r = random() % 100;
      std::uint64_t c = base + random() % 1200;
      if (r < 3) base += random() % 3000;
      if (r >= 3 && r < 6 && base > 2000) c = base - 2000 + random() % 2000;
      const auto expected = seen.empty() || c > highest ? Window::Check::kNew
                            : highest - c >= 1024       ? Window::Check::kTooOld
                            : seen.count(c) != 0        ? Window::Check::kSeen
                                                        : Window::Check::kNew;
      ASSERT_EQ(w.check(c), expected) << "run " << run << " step " << i << " counter " << c;
      if (expected == Window::Check::kNew) {
        w.accept(c);
        seen.insert(c);
        highest = std::max(highest, c);
      }
    }
  }
}

TEST(TokenBucket, ABurstThenOnePerInterval) {
  TokenBucket bucket(4, 100ms);
  const auto t0 = Clock::now();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0 + 99ms));
  EXPECT_TRUE(bucket.take(t0 + 100ms));
  EXPECT_FALSE(bucket.take(t0 + 150ms));
  EXPECT_TRUE(bucket.take(t0 + 250ms)) << "the half interval earned before counts";
  int later = 0;
  for (int i = 0; i < 10; ++i) later += bucket.take(t0 + 100s) ? 1 : 0;
  EXPECT_EQ(later, 4) << "a long quiet time refills the burst, no more";
}

TEST(CookieMint, ACookieCountsForItsInitiatorAndKeyForOneToTwoLifetimes) {
  CookieMint mint(30s);
  const auto t0 = Clock::now();
  mint.rotate(t0);
  PublicKey key{};
  key[0] = 7;
  const auto cookie = mint.make(2, 1, key);
  EXPECT_TRUE(mint.valid(2, 1, key, cookie));
  EXPECT_FALSE(mint.valid(3, 1, key, cookie)) << "another initiator";
  EXPECT_FALSE(mint.valid(2, 3, key, cookie)) << "another responder";
  auto other_key = key;
  other_key[31] = 1;
  EXPECT_FALSE(mint.valid(2, 1, other_key, cookie));
  EXPECT_FALSE(mint.valid(2, 1, key, Cookie{}));
  mint.rotate(t0 + 29s);
  EXPECT_TRUE(mint.valid(2, 1, key, cookie));
  mint.rotate(t0 + 30s);
  EXPECT_TRUE(mint.valid(2, 1, key, cookie)) << "from the previous secret";
  EXPECT_NE(mint.make(2, 1, key), cookie);
  mint.rotate(t0 + 60s);
  EXPECT_FALSE(mint.valid(2, 1, key, cookie));

  CookieMint quiet(30s);
  quiet.rotate(t0);
  const auto early = quiet.make(2, 1, key);
  quiet.rotate(t0 + 70s);  // a long silence, then one rotation
  EXPECT_FALSE(quiet.valid(2, 1, key, early));
}

TEST(SessionCrypto, BothEndsDeriveMatchingKeysOnlyWithTheSameClusterKey) {
  const auto cluster_key = parse_cluster_key(random_cluster_key_hex());
  const ClusterSecrets secrets(cluster_key);
  const auto initiator = EphemeralKeys::generate();
  const auto responder = EphemeralKeys::generate();
  const auto i = secrets.initiator_keys(initiator, responder.public_key);
  const auto r = secrets.responder_keys(responder, initiator.public_key);
  ASSERT_TRUE(i && r);
  EXPECT_EQ(std::memcmp(i->send.data(), r->receive.data(), 32), 0);
  EXPECT_EQ(std::memcmp(i->receive.data(), r->send.data(), 32), 0);
  EXPECT_NE(std::memcmp(i->send.data(), i->receive.data(), 32), 0) << "a key per direction";

  const ClusterSecrets other(parse_cluster_key(random_cluster_key_hex()));
  const auto o = other.responder_keys(responder, initiator.public_key);
  ASSERT_TRUE(o);
  EXPECT_NE(std::memcmp(o->receive.data(), r->receive.data(), 32), 0) << "the cluster key is mixed in";

  EXPECT_EQ(session_id_of(initiator.public_key, responder.public_key),
            session_id_of(initiator.public_key, responder.public_key));
  EXPECT_NE(session_id_of(initiator.public_key, responder.public_key),
            session_id_of(responder.public_key, initiator.public_key));
  EXPECT_FALSE(secrets.initiator_keys(initiator, PublicKey{})) << "a low-order point";
  EXPECT_FALSE(secrets.responder_keys(responder, PublicKey{}));
}

TEST(SessionCrypto, AMacCoversEveryByteAndNeedsTheClusterKey) {
  const ClusterSecrets secrets(parse_cluster_key(random_cluster_key_hex()));
  std::vector<std::byte> message(94, std::byte{0x33});
  const auto mac = secrets.mac(message);
  EXPECT_TRUE(secrets.verify(message, mac));
  for (std::size_t i = 0; i < message.size(); ++i) {
    auto changed = message;
    changed[i] ^= std::byte{1};
    EXPECT_FALSE(secrets.verify(changed, mac)) << i;
  }
  const ClusterSecrets other(parse_cluster_key(random_cluster_key_hex()));
  EXPECT_FALSE(other.verify(message, mac));
}

TEST(SessionCrypto, SealedBytesOpenOnlyWithTheirKeyCounterAndHeader) {
  SymmetricKey key;
  SymmetricKey other;
  std::memset(key.data(), 1, key.size());
  std::memset(other.data(), 2, other.size());
  const std::vector<std::byte> header(18, std::byte{9});
  const std::vector<std::byte> plain(100, std::byte{0x77});
  std::vector<std::byte> sealed(plain.size() + kTagBytes);
  seal_aead(key, 5, header, plain, sealed.data());
  std::vector<std::byte> opened(plain.size());
  EXPECT_TRUE(open_aead(key, 5, header, sealed, opened.data()));
  EXPECT_EQ(opened, plain);
  EXPECT_FALSE(open_aead(other, 5, header, sealed, opened.data()));
  EXPECT_FALSE(open_aead(key, 6, header, sealed, opened.data()));
  auto changed_header = header;
  changed_header[0] = std::byte{0};
  EXPECT_FALSE(open_aead(key, 5, changed_header, sealed, opened.data()));
  EXPECT_FALSE(open_aead(key, 5, header, std::span(sealed).first(kTagBytes - 1), opened.data()));
}

TEST(SessionCrypto, ASecretLeavesNoCopyWhenMoved) {
  Secret<32> a;
  std::memset(a.data(), 0xab, a.size());
  Secret<32> b(std::move(a));
  const std::array<unsigned char, 32> zero{};
  EXPECT_EQ(std::memcmp(a.data(), zero.data(), 32), 0);  // NOLINT(bugprone-use-after-move): that is the point
  EXPECT_EQ(b.data()[0], 0xab);
}

TEST(ClusterKey, ParsesHexAndRejectsTheRest) {
  EXPECT_EQ(random_cluster_key_hex().size(), 64U);
  EXPECT_NE(random_cluster_key_hex(), random_cluster_key_hex());
  EXPECT_NO_THROW(parse_cluster_key(std::string(64, 'a')));
  EXPECT_THROW(parse_cluster_key(std::string(63, 'a')), std::invalid_argument);
  EXPECT_THROW(parse_cluster_key(std::string(64, 'g')), std::invalid_argument);
  EXPECT_THROW(parse_cluster_key(""), std::invalid_argument);
}

}  // namespace
}  // namespace vdtu::bridge
