// Secure sessions between nodes: handshakes that only holders of the cluster
// key complete; frames that open once, and only from the peer they were
// sealed for; replays, forgeries and stale datagrams rejected and counted;
// restarts, rekeys and cut-off handshakes that converge through a wire that
// loses, duplicates and reorders; key work bounded under a flood.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "support/scale.hpp"
#include "support/session_cluster.hpp"

namespace vdtu::bridge {
namespace {

using namespace std::chrono_literals;
using testing::SessionCluster;
using testing::WireFaults;
using Datagram = SessionCluster::Datagram;

void discard(NodeId /*peer*/, std::span<const std::byte> /*datagram*/) {}

bool pair_up(SessionCluster& c, std::chrono::milliseconds limit = 200ms) {
  return c.run_until([&] { return c.all_paired(); }, limit);
}

std::vector<std::byte> text(const char* s) {
  std::vector<std::byte> out(std::strlen(s));
  std::memcpy(out.data(), s, out.size());
  return out;
}

std::vector<std::byte> sealed(SessionCluster& c, NodeId from, NodeId to, std::span<const std::byte> frame) {
  std::vector<std::byte> out;
  EXPECT_EQ(c.at(from).seal(to, frame, out), Status::kOk);
  return out;
}

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

std::vector<Datagram> of_kind(const std::vector<Datagram>& log, std::initializer_list<SessionKind> kinds) {
  std::vector<Datagram> out;
  std::copy_if(log.begin(), log.end(), std::back_inserter(out), [&](const Datagram& d) {
    return std::find(kinds.begin(), kinds.end(), testing::kind_of(d)) != kinds.end();
  });
  return out;
}

std::size_t events_since(const SessionCluster& c, SessionCluster::Clock::time_point t, NodeId node,
                         NodeId peer, PeerChange change) {
  return static_cast<std::size_t>(std::count_if(c.events.begin(), c.events.end(), [&](const auto& e) {
    return e.at > t && e.node == node && e.peer == peer && e.change == change;
  }));
}

TEST(SecureSession, TwoNodesPairUpAndEachReportsAFirstContact) {
  SessionCluster c({1, 2});
  EXPECT_FALSE(c.at(1).established(2));
  ASSERT_TRUE(pair_up(c, 20ms)) << "a few round trips on a perfect wire";
  EXPECT_EQ(c.count_events(1, 2, PeerChange::kFirstContact), 1U);
  EXPECT_EQ(c.count_events(2, 1, PeerChange::kFirstContact), 1U);
  EXPECT_EQ(c.events.size(), 2U);
  // Both started at once: node 1's initiation won, node 2 answered it.
  EXPECT_GE(c.at(1).stats().collisions, 1U);
  EXPECT_EQ(c.at(2).stats().collisions, 0U);
  EXPECT_EQ(c.at(1).stats().key_exchanges, 2U) << "a key pair, one shared secret";
  EXPECT_EQ(c.at(2).stats().key_exchanges, 3U)
      << "its abandoned key pair, then a key pair and a shared secret";
  EXPECT_EQ(c.at(2).stats().cookies_sent, 1U);
  for (const NodeId n : {1, 2}) {
    const auto& s = c.at(n).stats();
    EXPECT_EQ(s.malformed + s.forged + s.replayed + s.stale + s.rate_limited, 0U) << "node " << n;
  }
}

TEST(SecureSession, FramesOpenOnceFromTheirPeerAndTravelEncrypted) {
  SessionCluster c({1, 2});
  const auto frame = text("a frame of the reliable link, forty bytes of header and more");
  std::vector<std::byte> out;
  EXPECT_EQ(c.at(1).seal(2, frame, out), Status::kNotActive) << "no session yet";
  EXPECT_EQ(c.at(1).seal(3, frame, out), Status::kInvalidArgument) << "not a peer";
  ASSERT_TRUE(pair_up(c));

  for (const auto& [from, to] : {std::pair<NodeId, NodeId>{1, 2}, {2, 1}}) {
    const auto d = sealed(c, from, to, frame);
    EXPECT_EQ(d.size(), frame.size() + kSealOverhead);
    EXPECT_EQ(std::search(d.begin(), d.end(), frame.begin(), frame.begin() + 8), d.end()) << "encrypted";
    const auto opened = c.deliver(to, from, d);
    ASSERT_EQ(opened.verdict, Verdict::kFrame);
    EXPECT_EQ(opened.peer, from) << "the authenticated sender";
    EXPECT_EQ(opened.change, PeerChange::kNone);
    EXPECT_TRUE(same_bytes(opened.frame, frame));
    EXPECT_EQ(c.deliver(to, from, d).verdict, Verdict::kReplayed);
    EXPECT_EQ(c.at(to).stats().frames_opened, 1U);
    EXPECT_EQ(c.at(to).stats().replayed, 1U);
  }
  EXPECT_EQ(kSealOverhead, 34U);
}

TEST(SecureSession, TheLargestFrameFitsOneUdpDatagram) {
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  std::vector<std::byte> frame(sizeof(FrameHeader) + kMaxFramePayload);
  std::mt19937 random(3);
  for (auto& b : frame) b = static_cast<std::byte>(random());
  const auto d = sealed(c, 1, 2, frame);
  EXPECT_LE(d.size(), kMaxUdpPayload);
  const auto opened = c.deliver(2, 1, d);
  ASSERT_EQ(opened.verdict, Verdict::kFrame);
  EXPECT_TRUE(same_bytes(opened.frame, frame));
  std::vector<std::byte> out;
  EXPECT_EQ(c.at(1).seal(2, std::vector<std::byte>(kMaxSealedPlaintext + 1), out), Status::kTooLarge);
  EXPECT_EQ(c.at(1).seal(2, std::vector<std::byte>(kMaxSealedPlaintext), out), Status::kOk);
  EXPECT_EQ(out.size(), kMaxUdpPayload);
}

TEST(SecureSession, EveryChangedByteAndEveryTruncationIsRejected) {
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  const auto d = sealed(c, 1, 2, text("a datagram worth forging"));
  for (std::size_t i = 0; i < d.size(); ++i) {
    auto changed = d;
    changed[i] ^= std::byte{0x01};
    const auto expected = i < 2    ? Verdict::kMalformed  // kind, version
                          : i < 10 ? Verdict::kStale      // session id: no such session
                                   : Verdict::kForged;    // counter, ciphertext, tag
    EXPECT_EQ(c.deliver(2, 1, changed).verdict, expected) << "byte " << i;
  }
  for (std::size_t n = 0; n < d.size(); ++n) {
    EXPECT_EQ(c.deliver(2, 1, std::span(d).first(n)).verdict,
              n < kSealOverhead ? Verdict::kMalformed : Verdict::kForged)
        << n << " bytes";
  }
  auto longer = d;
  longer.push_back(std::byte{0});
  EXPECT_EQ(c.deliver(2, 1, longer).verdict, Verdict::kForged);
  auto beyond_udp = d;
  beyond_udp.resize(kMaxUdpPayload + 1);
  EXPECT_EQ(c.deliver(2, 1, beyond_udp).verdict, Verdict::kMalformed);
  EXPECT_EQ(c.deliver(2, 1, d).verdict, Verdict::kFrame) << "the rejections did not burn the counter";
  const auto& s = c.at(2).stats();
  EXPECT_EQ(s.forged, d.size() - 10 + d.size() - kSealOverhead + 1);
  EXPECT_EQ(s.stale, 8U);
  EXPECT_EQ(s.malformed, 2 + kSealOverhead + 1);
  EXPECT_TRUE(c.events.size() == 2U) << "nothing changed a session";
}

TEST(SecureSession, ReorderedDatagramsPassOnceWithinTheWindowOlderOnesAreStale) {
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  std::vector<std::vector<std::byte>> d;
  for (int i = 0; i < 1200; ++i) d.push_back(sealed(c, 1, 2, text("x")));
  EXPECT_EQ(c.deliver(2, 1, d[1199]).verdict, Verdict::kFrame);
  EXPECT_EQ(c.deliver(2, 1, d[200]).verdict, Verdict::kFrame) << "999 behind: inside";
  EXPECT_EQ(c.deliver(2, 1, d[200]).verdict, Verdict::kReplayed);
  EXPECT_EQ(c.deliver(2, 1, d[176]).verdict, Verdict::kFrame) << "1023 behind: the window's end";
  EXPECT_EQ(c.deliver(2, 1, d[175]).verdict, Verdict::kStale) << "1024 behind: too old to tell";
  EXPECT_EQ(c.deliver(2, 1, d[0]).verdict, Verdict::kStale);
  EXPECT_EQ(c.deliver(2, 1, d[1198]).verdict, Verdict::kFrame);
}

TEST(SecureSession, ADatagramCountsOnlyFromThePeerItWasSealedFor) {
  SessionCluster c({1, 2, 3});
  ASSERT_TRUE(pair_up(c));
  const auto from2 = sealed(c, 2, 1, text("for node 1"));
  EXPECT_EQ(c.deliver(1, 3, from2).verdict, Verdict::kStale) << "sealed by 2, arriving from 3's address";
  EXPECT_EQ(c.deliver(3, 2, from2).verdict, Verdict::kStale) << "sealed for 1, delivered to 3";
  EXPECT_EQ(c.at(1).open(from2, 9, c.now, discard).verdict, Verdict::kForged) << "9 is no peer";
  const auto from1 = sealed(c, 1, 2, text("for node 2"));
  EXPECT_EQ(c.deliver(1, 2, from1).verdict, Verdict::kForged) << "reflected to its sealer";
  EXPECT_EQ(c.deliver(1, 2, from2).verdict, Verdict::kFrame) << "the genuine datagram still opens";
  EXPECT_EQ(c.deliver(2, 1, from1).verdict, Verdict::kFrame);
}

TEST(SecureSession, WithoutTheClusterKeyNoHandshakeCompletesAndNoKeyWorkIsDone) {
  SessionCluster c({1, 2});
  auto stranger = c.config_for(2);
  stranger.cluster_key = parse_cluster_key(random_cluster_key_hex());
  c.start_process(2, stranger);
  EXPECT_FALSE(c.run_until([&] { return c.at(1).established(2) || c.at(2).established(1); }, 5s));
  const auto& s = c.at(1).stats();
  EXPECT_GT(s.forged, 5U) << "the stranger's INITs";
  EXPECT_EQ(s.key_exchanges, 1U) << "only node 1's own key pair";
  EXPECT_EQ(s.cookies_sent + s.handshake_messages, 0U);

  std::mt19937 random(5);
  const auto before = s.malformed + s.forged + s.stale;
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::byte> junk(random() % 200);
    for (auto& b : junk) b = static_cast<std::byte>(random());
    if (junk.size() >= 2 && i % 2 == 0) {  // half with a plausible kind and version
      junk[0] = static_cast<std::byte>(1 + random() % 5);
      junk[1] = std::byte{kSessionVersion};
    }
    EXPECT_TRUE(c.deliver(1, 2, junk).rejected());
  }
  EXPECT_EQ(s.malformed + s.forged + s.stale - before, 2000U);
  EXPECT_EQ(s.key_exchanges, 1U);
}

TEST(SecureSession, AKeyHolderCannotPoseAsAnotherNode) {
  SessionCluster c({1, 2, 3});
  ASSERT_TRUE(pair_up(c));
  const auto live = c.at(1).session_id(2);
  // Everything node 3 ever sent node 1, arriving from node 2's address.
  std::size_t handshakes = 0;
  for (const auto& d : c.log) {
    if (d.from != 3 || d.to != 1) continue;
    const auto kind = testing::kind_of(d);
    const bool sealed_kind = kind == SessionKind::kData || kind == SessionKind::kConfirm;
    handshakes += sealed_kind ? 0 : 1;
    EXPECT_EQ(c.deliver(1, 2, d.bytes).verdict, sealed_kind ? Verdict::kStale : Verdict::kForged);
  }
  EXPECT_GT(handshakes, 0U);
  EXPECT_EQ(c.deliver(1, 2, sealed(c, 3, 1, text("from 3"))).verdict, Verdict::kStale);
  EXPECT_EQ(c.at(1).session_id(2), live);
}

TEST(SecureSession, MalformedOrMisaddressedHandshakeMessagesAreRejected) {
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  const auto inits = of_kind(c.log, {SessionKind::kInit});
  const auto it = std::find_if(inits.begin(), inits.end(), [](const Datagram& d) { return d.from == 1; });
  ASSERT_NE(it, inits.end());
  const auto& init = it->bytes;
  EXPECT_EQ(c.deliver(2, 1, std::span(init).first(init.size() - 1)).verdict, Verdict::kMalformed);
  auto longer = init;
  longer.push_back(std::byte{0});
  EXPECT_EQ(c.deliver(2, 1, longer).verdict, Verdict::kMalformed);
  EXPECT_EQ(c.deliver(2, 1, {}).verdict, Verdict::kMalformed);
  for (const auto& [index, value] : {std::pair{0, 9}, {1, 2}}) {  // unknown kind, unknown version
    auto changed = init;
    changed[index] = static_cast<std::byte>(value);
    EXPECT_EQ(c.deliver(2, 1, changed).verdict, Verdict::kMalformed);
  }
  for (std::size_t i = 2; i < init.size(); ++i) {
    auto changed = init;
    changed[i] ^= std::byte{0x80};
    EXPECT_EQ(c.deliver(2, 1, changed).verdict, Verdict::kForged) << "byte " << i;
  }
  // Well authenticated, but naming another sender or receiver.
  const ClusterSecrets secrets(c.key());
  for (const auto& [src, dst] : {std::pair<NodeId, NodeId>{3, 2}, {1, 3}, {2, 1}}) {
    InitMessage m{};
    std::memcpy(&m, init.data(), sizeof(m));
    m.header.src = src;
    m.header.dst = dst;
    m.mac = secrets.mac(authenticated_part(m));
    EXPECT_EQ(c.deliver(2, 1, std::as_bytes(std::span(&m, 1))).verdict, Verdict::kForged);
  }
  // Answers to handshakes that are over.
  for (const auto& d : of_kind(c.log, {SessionKind::kCookie, SessionKind::kResponse})) {
    EXPECT_EQ(c.deliver(d.to, d.from, d.bytes).verdict, Verdict::kStale);
  }
  EXPECT_EQ(c.events.size(), 2U);
}

// Replays of every handshake message and CONFIRM of a session's making:
// the session stays, nobody is told of a change, and the key work they cause
// is bounded; once the cookies they carry expired, they cause none.
TEST(SecureSession, ReplayedHandshakesNeitherReplaceNorEndALiveSession) {
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  c.run_until([] { return false; }, 20ms);
  const auto recorded = of_kind(
      c.log, {SessionKind::kInit, SessionKind::kCookie, SessionKind::kResponse, SessionKind::kConfirm});
  std::set<PublicKey> init_keys;
  for (const auto& d : of_kind(recorded, {SessionKind::kInit})) {
    PublicKey key{};
    std::memcpy(key.data(), d.bytes.data() + offsetof(InitMessage, ephemeral), key.size());
    init_keys.insert(key);
  }
  const auto live = c.at(1).session_id(2);
  const auto work = c.at(1).stats().key_exchanges + c.at(2).stats().key_exchanges;
  auto replay_all = [&] {
    for (int round = 0; round < 200; ++round) {
      for (const auto& d : recorded) c.deliver(d.to, d.from, d.bytes);
      c.step();
    }
  };
  replay_all();
  EXPECT_EQ(c.at(1).session_id(2), live);
  EXPECT_EQ(c.at(2).session_id(1), live);
  EXPECT_EQ(c.events.size(), 2U);
  EXPECT_LE(c.at(1).stats().key_exchanges + c.at(2).stats().key_exchanges - work, 2 * init_keys.size());
  const auto& s1 = c.at(1).stats();
  const auto& s2 = c.at(2).stats();
  EXPECT_GT(s1.replayed + s2.replayed, 200U);
  EXPECT_GT(s1.stale + s2.stale, 200U);

  for (int i = 0; i < 61; ++i) c.step(1s);  // two cookie lifetimes
  const auto later_work = c.at(1).stats().key_exchanges + c.at(2).stats().key_exchanges;
  replay_all();
  EXPECT_EQ(c.at(1).stats().key_exchanges + c.at(2).stats().key_exchanges, later_work);
  EXPECT_EQ(c.at(1).session_id(2), live);
  EXPECT_EQ(c.events.size(), 2U);
  EXPECT_EQ(c.deliver(2, 1, sealed(c, 1, 2, text("still here"))).verdict, Verdict::kFrame);
}

// Someone who recorded everything and later learns the cluster key (a node
// built with it) still opens nothing: the session keys came from ephemeral
// keys that are gone.
TEST(SecureSession, TheClusterKeyAloneOpensNoRecordedTraffic) {
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  for (std::uint64_t i = 0; i < 10; ++i) {
    c.send_frame(1, 2, i);
    c.send_frame(2, 1, i);
  }
  c.run_until([] { return false; }, 10ms);
  ASSERT_EQ(c.frames.size(), 20U);
  for (const NodeId as : {1, 2}) {
    const NodeId peer = 3 - as;
    SessionEndpoint eavesdropper(c.config_for(as), std::vector<NodeId>{peer});
    for (const auto& d : c.log) {
      if (d.to == as) {
        EXPECT_NE(eavesdropper.open(d.bytes, peer, c.now, discard).verdict, Verdict::kFrame);
      }
    }
    EXPECT_EQ(eavesdropper.stats().frames_opened, 0U);
  }
}

class Restart : public ::testing::TestWithParam<NodeId> {};

// A restarted node (new process: new keys, new incarnation) pairs up again
// with a peer that kept running, within a few round trips; the peer is told
// it is a new incarnation; the old process's datagrams open nowhere.
TEST_P(Restart, ARestartedPeerIsBackSoonAndKnownAsANewIncarnation) {
  const NodeId restarted = GetParam();
  const NodeId other = restarted == 1 ? 2 : 1;
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  const auto old_from_restarted = sealed(c, restarted, other, text("old"));
  const auto old_to_restarted = sealed(c, other, restarted, text("old"));
  const auto old = c.at(other).session_id(restarted);

  c.start_process(restarted);
  const auto t0 = c.now;
  std::vector<std::byte> out;
  EXPECT_EQ(c.at(other).seal(restarted, text("x"), out), Status::kOk) << "the peer does not know yet";
  EXPECT_EQ(c.deliver(restarted, other, out).verdict, Verdict::kStale) << "under the old session";
  ASSERT_TRUE(c.run_until([&] { return c.paired(1, 2) && c.at(other).session_id(restarted) != old; }, 2s));
  EXPECT_LE(c.now - t0, 10ms) << "a few round trips";
  EXPECT_EQ(events_since(c, t0, other, restarted, PeerChange::kNewIncarnation), 1U);
  EXPECT_EQ(events_since(c, t0, restarted, other, PeerChange::kFirstContact), 1U);
  EXPECT_EQ(c.count_events(other, restarted, PeerChange::kFirstContact), 1U) << "from the first process only";

  EXPECT_EQ(c.deliver(other, restarted, old_from_restarted).verdict, Verdict::kStale);
  EXPECT_EQ(c.deliver(restarted, other, old_to_restarted).verdict, Verdict::kStale);
  EXPECT_EQ(c.deliver(other, restarted, sealed(c, restarted, other, text("new"))).verdict, Verdict::kFrame);
  EXPECT_EQ(c.deliver(restarted, other, sealed(c, other, restarted, text("new"))).verdict, Verdict::kFrame);
}

INSTANTIATE_TEST_SUITE_P(SecureSession, Restart, ::testing::Values(NodeId{1}, NodeId{2}));

TEST(SecureSession, ARestartByTheCallerMakesItANewIncarnationForThePeer) {
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  const auto old = c.at(1).session_id(2);
  const auto old_datagram = sealed(c, 2, 1, text("before"));
  c.at(2).restart(1);  // node 2 gave node 1 up
  const auto t0 = c.now;
  EXPECT_FALSE(c.at(2).established(1));
  std::vector<std::byte> out;
  EXPECT_EQ(c.at(2).seal(1, text("x"), out), Status::kNotActive);
  ASSERT_TRUE(c.run_until([&] { return c.paired(1, 2) && c.at(1).session_id(2) != old; }, 2s));
  EXPECT_EQ(events_since(c, t0, 1, 2, PeerChange::kNewIncarnation), 1U) << "node 1 restarts its link too";
  EXPECT_EQ(events_since(c, t0, 2, 1, PeerChange::kFirstContact), 1U) << "node 2 already did";
  EXPECT_EQ(c.deliver(1, 2, old_datagram).verdict, Verdict::kStale);
}

// Half a handshake: node 2 answered, node 1 took the session up, and then
// nothing sealed from node 1 reaches node 2 for a while. Both give the
// unconfirmed session up and try again; when the wire heals, they pair up.
TEST(SecureSession, AHandshakeCutOffHalfwayIsRepeatedUntilItCompletes) {
  SessionCluster c({1, 2});
  bool cut = true;
  c.block = [&](const Datagram& d) {
    const auto kind = testing::kind_of(d);
    return cut && d.from == 1 && (kind == SessionKind::kConfirm || kind == SessionKind::kData);
  };
  ASSERT_TRUE(c.run_until([&] { return c.at(1).established(2); }, 1s));
  c.run_until([] { return false; }, 7s);
  EXPECT_FALSE(c.at(2).established(1));
  EXPECT_GE(c.at(1).stats().sessions_established, 2U) << "node 1 gave up and made another";
  cut = false;
  ASSERT_TRUE(c.run_until([&] { return c.all_paired(); }, 3s));
  EXPECT_EQ(c.count_events(1, 2, PeerChange::kFirstContact), 1U);
  EXPECT_EQ(c.count_events(2, 1, PeerChange::kFirstContact), 1U);
  EXPECT_EQ(
      c.count_events(1, 2, PeerChange::kNewIncarnation) + c.count_events(2, 1, PeerChange::kNewIncarnation),
      0U);
}

// The same during a rekey: the initiator took the new session up, the
// responder never hears of it. The initiator keeps opening what the responder
// seals under the old session all along (as `previous`, then as current
// again when it gives the new one up), and the rekey completes later.
TEST(SecureSession, ARekeyCutOffHalfwayKeepsTheOldSessionWorking) {
  SessionConfig base;
  base.rekey_after = 1s;
  SessionCluster c({1, 2}, {}, 1, base);
  ASSERT_TRUE(pair_up(c));
  ASSERT_EQ(c.at(1).stats().collisions, 1U) << "node 1 initiated, so node 1 rekeys";
  const auto first = c.at(1).session_id(2);
  bool cut = true;
  c.block = [&](const Datagram& d) {
    const auto kind = testing::kind_of(d);
    return cut && d.from == 1 && (kind == SessionKind::kConfirm || kind == SessionKind::kData);
  };
  std::uint64_t sent = 0;
  const auto t0 = c.now;
  while (c.now - t0 < 8s) {
    if (c.send_frame(2, 1, sent) == Status::kOk) ++sent;
    c.step();
  }
  EXPECT_NE(c.at(1).session_id(2), first) << "node 1 switched (more than once)";
  EXPECT_EQ(c.at(2).session_id(1), first) << "node 2 never heard of it";
  EXPECT_EQ(sent, 8000U);
  EXPECT_EQ(c.frames.size(), sent) << "every frame from node 2 opened at node 1";
  cut = false;
  ASSERT_TRUE(c.run_until([&] { return c.paired(1, 2) && c.at(2).session_id(1) != first; }, 3s));
  EXPECT_EQ(c.events.size(), 2U) << "the first contacts only";
}

// A hundred key holders claiming node 2's id send fresh INITs with valid
// cookies at once, then a hundred thousand copies of them: node 1 does the
// key work its budget allows and no more, and its live session with the
// real node 2 carries on.
TEST(SecureSession, AFloodOfHandshakesGetsOnlyTheKeyWorkTheBudgetAllows) {
  SessionCluster c({1, 2});
  ASSERT_TRUE(pair_up(c));
  const auto live = c.at(1).session_id(2);
  std::vector<std::vector<std::byte>> inits;
  for (int i = 0; i < 100; ++i) {
    SessionEndpoint clone(c.config_for(2), std::vector<NodeId>{1});
    std::vector<std::vector<std::byte>> to_clone;
    std::vector<std::vector<std::byte>> from_clone;
    auto keep = [](auto& into) {
      return [&into](NodeId, std::span<const std::byte> d) { into.emplace_back(d.begin(), d.end()); };
    };
    clone.poll(c.now, keep(from_clone));
    ASSERT_EQ(from_clone.size(), 1U);
    c.at(1).open(from_clone[0], 2, c.now, keep(to_clone));  // answered with a cookie
    ASSERT_EQ(to_clone.size(), 1U);
    clone.open(to_clone[0], 1, c.now, keep(from_clone));
    ASSERT_EQ(from_clone.size(), 2U);
    inits.push_back(from_clone[1]);
  }
  const SessionConfig config;
  const auto& s = c.at(1).stats();
  const auto work = s.key_exchanges;
  for (const auto& init : inits) c.at(1).open(init, 2, c.now, discard);
  EXPECT_EQ(s.key_exchanges - work, 2 * config.handshake_burst);
  EXPECT_EQ(s.rate_limited, inits.size() - config.handshake_burst);

  const auto flood_work = s.key_exchanges;
  const auto t0 = c.now;
  const std::size_t copies = testing::scaled(100'000);
  for (std::size_t i = 0; i < copies; ++i) {
    c.at(1).open(inits[i % inits.size()], 2, c.now, discard);
    if (i % (copies / 100) == 0) c.step(100ms);
  }
  const auto budget = config.handshake_burst + (c.now - t0) / config.handshake_interval;
  EXPECT_LE(s.key_exchanges - flood_work, 2 * static_cast<std::uint64_t>(budget));
  EXPECT_GE(s.rate_limited + s.replayed, copies - static_cast<std::uint64_t>(budget));
  EXPECT_EQ(c.at(1).session_id(2), live) << "answered INITs are candidates, never the session";
  EXPECT_EQ(c.events.size(), 2U);
  EXPECT_EQ(c.deliver(1, 2, sealed(c, 2, 1, text("still here"))).verdict, Verdict::kFrame);
  EXPECT_EQ(c.deliver(2, 1, sealed(c, 1, 2, text("still here"))).verdict, Verdict::kFrame);
}

// Rekeys (by time, or by datagrams sealed) change the session under a
// steady flow both ways through a reordering wire: no frame is lost or
// doubled, nobody is told of a new incarnation.
class Rekey : public ::testing::TestWithParam<bool> {};

TEST_P(Rekey, RekeysKeepTheIncarnationAndLoseNoFrame) {
  SessionConfig base;
  if (GetParam()) {
    base.rekey_after = 150ms;
  } else {
    base.rekey_after_datagrams = 100;
  }
  SessionCluster c({1, 2}, {0, 0, 5ms}, 7, base);
  ASSERT_TRUE(pair_up(c));
  std::set<std::uint64_t> sessions;
  const std::uint64_t count = 1500;
  for (std::uint64_t i = 0; i < count; ++i) {
    ASSERT_EQ(c.send_frame(1, 2, i), Status::kOk);
    ASSERT_EQ(c.send_frame(2, 1, i), Status::kOk);
    c.step();
    if (c.paired(1, 2)) sessions.insert(*c.at(1).session_id(2));
  }
  c.run_until([] { return false; }, 20ms);
  EXPECT_GE(sessions.size(), 5U);
  EXPECT_EQ(c.events.size(), 2U) << "the first contacts only";
  std::set<std::tuple<std::uint32_t, std::uint32_t, std::uint64_t>> got;
  for (const auto& f : c.frames) EXPECT_TRUE(got.emplace(f.from, f.to, f.seq).second) << "doubled";
  EXPECT_EQ(got.size(), 2 * count) << "every frame, also those sealed under a session just replaced";
}

INSTANTIATE_TEST_SUITE_P(SecureSession, Rekey, ::testing::Bool());

// Three nodes start at once through a wire that loses 30 %, duplicates 20 %
// and reorders everything; they pair up, carry frames (each at most once,
// only ever what was sent), and pair up again after two of them restart at
// the same time.
class Convergence : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(Convergence, ThreeNodesPairUpCarryFramesAndRecoverFromRestarts) {
  SessionCluster c({1, 2, 3}, {0.3, 0.2, 20ms}, GetParam());
  ASSERT_TRUE(pair_up(c, 30s));
  for (const NodeId a : {1, 2, 3}) {
    for (const NodeId b : {1, 2, 3}) {
      if (a == b) continue;
      EXPECT_EQ(c.count_events(a, b, PeerChange::kFirstContact), 1U) << a << " about " << b;
      EXPECT_EQ(c.count_events(a, b, PeerChange::kNewIncarnation), 0U) << a << " about " << b;
    }
  }
  const std::uint64_t count = 200;
  std::uint64_t sent = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    for (const NodeId a : {1, 2, 3}) {
      for (const NodeId b : {1, 2, 3}) {
        if (a != b && c.send_frame(a, b, i) == Status::kOk) ++sent;
      }
    }
    c.step();
  }
  c.run_until([] { return false; }, 50ms);
  std::set<std::tuple<std::uint32_t, std::uint32_t, std::uint64_t>> got;
  for (const auto& f : c.frames) {
    EXPECT_TRUE(got.emplace(f.from, f.to, f.seq).second) << "doubled";
    EXPECT_TRUE(f.from != f.to && f.from >= 1 && f.from <= 3 && f.to >= 1 && f.to <= 3 && f.seq < count);
  }
  EXPECT_GE(got.size(), sent / 2) << "of " << sent;

  c.start_process(1);
  c.start_process(3);
  const auto t0 = c.now;
  ASSERT_TRUE(pair_up(c, 30s));
  EXPECT_EQ(events_since(c, t0, 2, 1, PeerChange::kNewIncarnation), 1U);
  EXPECT_EQ(events_since(c, t0, 2, 3, PeerChange::kNewIncarnation), 1U);
  EXPECT_EQ(events_since(c, t0, 1, 3, PeerChange::kFirstContact), 1U);
  EXPECT_EQ(events_since(c, t0, 3, 1, PeerChange::kFirstContact), 1U);
}

INSTANTIATE_TEST_SUITE_P(SecureSession, Convergence, ::testing::Range<std::uint64_t>(1, 21));

}  // namespace
}  // namespace vdtu::bridge
