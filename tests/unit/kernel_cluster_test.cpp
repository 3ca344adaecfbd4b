// Several kernels in one process, their kernelcalls delivered by the test (one
// at a time when the order matters): sessions, OBTAIN and DELEGATE across
// kernels, revocation spanning three kernels, overlapping revocations, and a
// kernel that disappears in the middle of one.
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "kernel/kernel.hpp"
#include "support/kernel_fixture.hpp"

namespace vdtu::kernel {
namespace {

using kif::Error;
using kif::Syscall;
using testing::AcceptingEndpoints;

constexpr KernelId kKernels = 3;
// Kernel k owns PEs 10k .. 10k+9 and runs on PE 10k+9; VPE id = PE id.
constexpr VpeId vpe_on(KernelId k, int i) { return static_cast<VpeId>(10 * k + i); }

class KernelCluster : public ::testing::Test {
 protected:
  KernelCluster() {
    for (KernelId k = 0; k < kKernels; ++k) {
      KernelConfig c;
      c.kernel_pe = testing::kernel_pe_of(k);
      c.self = k;
      c.members = testing::ten_pes_each(kKernels);
      c.global_memory_bytes = 1 << 20;
      c.global_memory_offset = std::uint64_t{k} << 20;
      kernels.push_back(std::make_unique<Kernel>(c, endpoints));
      for (int i = 0; i < 2; ++i) EXPECT_EQ(kernels[k]->boot_vpe(vpe_on(k, i), vpe_on(k, i)), Status::kOk);
    }
  }

  // A syscall; nothing if it was deferred (then `deferred` names it).
  std::optional<kif::SyscallReply> call(KernelId k, VpeId vpe, Syscall op, std::vector<std::uint64_t> args,
                                        std::string_view name = {}) {
    kif::SyscallRequest r{};
    r.opcode = op;
    std::copy(args.begin(), args.end(), r.args);
    r.name_length = name.size();
    std::copy(name.begin(), name.end(), r.name);
    return kernels[k]->syscall(vpe, std::as_bytes(std::span(&r, 1)), deferred);
  }
  Error err(KernelId k, VpeId vpe, Syscall op, std::vector<std::uint64_t> args, std::string_view name = {}) {
    auto r = call(k, vpe, op, std::move(args), name);
    EXPECT_TRUE(r.has_value()) << "deferred";
    return r ? r->error : Error::kServiceFailed;
  }

  // Moves every kernel's kernelcalls into the wire (in order per pair).
  void collect() {
    for (KernelId k = 0; k < kKernels; ++k) {
      for (auto& out : kernels[k]->take_kernelcalls()) wire.push_back({k, out.to, out.message});
    }
  }
  // Delivers one message; false if none was waiting.
  bool deliver_one() {
    collect();
    if (wire.empty()) return false;
    const auto m = wire.front();
    wire.pop_front();
    kernels[m.to]->kernelcall(m.from, wire_bytes(m.message));
    return true;
  }
  // Delivers the oldest message of a random pair of kernels (pairs stay in
  // order, as the bridge keeps them); false if none was waiting.
  bool deliver_random(std::mt19937& rng) {
    collect();
    std::vector<std::size_t> heads;
    std::set<std::pair<KernelId, KernelId>> seen;
    for (std::size_t i = 0; i < wire.size(); ++i) {
      if (seen.insert({wire[i].from, wire[i].to}).second) heads.push_back(i);
    }
    if (heads.empty()) return false;
    const auto pick = heads[std::uniform_int_distribution<std::size_t>(0, heads.size() - 1)(rng)];
    const auto m = wire[pick];
    wire.erase(wire.begin() + static_cast<std::ptrdiff_t>(pick));
    kernels[m.to]->kernelcall(m.from, wire_bytes(m.message));
    answer_service_calls();
    return true;
  }
  void settle() {
    while (deliver_one()) {
      answer_service_calls();
    }
    answer_service_calls();
  }
  // Servers answer: OPEN with ident 7, OBTAIN with `obtain_first`, DELEGATE
  // with `delegate_first`.
  void answer_service_calls() {
    for (KernelId k = 0; k < kKernels; ++k) {
      for (const auto& c : kernels[k]->take_outbox()) {
        kif::ServiceReply r{};
        r.ident = 7;
        r.count = c.request.count;
        r.first = c.request.op == kif::ServiceOp::kObtain ? obtain_first : delegate_first;
        if (c.request.op == kif::ServiceOp::kDelegate)
          delegate_first += static_cast<kif::Selector>(c.request.count);
        if (c.request.op == kif::ServiceOp::kClose) ++closes;
        if (auto d = kernels[k]->service_reply(c.id, r)) finished[k].push_back(*d);
      }
      for (auto& d : kernels[k]->take_finished()) finished[k].push_back(d);
    }
  }
  std::optional<kif::SyscallReply> result_of(KernelId k, std::uint64_t call_id) {
    answer_service_calls();
    for (const auto& d : finished[k]) {
      if (d.call == call_id) return d.reply;
    }
    return std::nullopt;
  }

  // Server VPE s on kernel `k` registers service `name` (gate at 20, service at 21).
  void serve(KernelId k, VpeId s, std::string_view name) {
    ASSERT_EQ(err(k, s, Syscall::kCreateGate, {kif::kSelSelf, 20, 5, 1, 4}), Error::kNone);
    ASSERT_EQ(err(k, s, Syscall::kCreateSrv, {21, 20}, name), Error::kNone);
    settle();  // the announcement
  }
  // Client VPE c on kernel `k` opens a session at `sel` to `name`.
  void open(KernelId k, VpeId c, kif::Selector sel, std::string_view name) {
    ASSERT_FALSE(call(k, c, Syscall::kCreateSess, {sel, 1}, name).has_value());
    const auto id = deferred;
    settle();
    auto r = result_of(k, id);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->error, Error::kNone);
  }
  // Delegates `sel` of client c (kernel k) over session `sess`; returns the
  // selector at the server.
  kif::Selector delegate(KernelId k, VpeId c, kif::Selector sess, kif::Selector sel) {
    const auto at = delegate_first;
    EXPECT_FALSE(call(k, c, Syscall::kDelegate, {sess, sel, 1, 0}).has_value());
    const auto id = deferred;
    settle();
    auto r = result_of(k, id);
    EXPECT_TRUE(r && r->error == Error::kNone);
    return at;
  }

  // VPE a (kernel 0) requests memory at 60 and delegates it to b (kernel 1),
  // which delegates it to c (kernel 2); with `to_d`, c delegates it on to d
  // (kernel 0 again). Selectors of the copies in `at_*`.
  struct Chain {
    VpeId a = vpe_on(0, 0), b = vpe_on(1, 0), c = vpe_on(2, 0), d = vpe_on(0, 1);
    kif::Selector at_b = 0, at_c = 0, at_d = 0;
  };
  Chain delegation_chain(bool to_d) {
    Chain ch;
    serve(1, ch.b, "one");
    serve(2, ch.c, "two");
    open(0, ch.a, 10, "one");
    open(1, ch.b, 10, "two");
    if (to_d) {
      serve(0, ch.d, "zero");
      open(2, ch.c, 10, "zero");
    }
    EXPECT_EQ(err(0, ch.a, Syscall::kReqMem, {60, 4096, kif::kPermRW}), Error::kNone);
    ch.at_b = delegate(0, ch.a, 10, 60);
    ch.at_c = delegate(1, ch.b, 10, ch.at_b);
    if (to_d) ch.at_d = delegate(2, ch.c, 10, ch.at_c);
    return ch;
  }

  struct WireMessage {
    KernelId from;
    KernelId to;
    KernelcallMessage message;
  };
  AcceptingEndpoints endpoints;
  std::vector<std::unique_ptr<Kernel>> kernels;
  std::deque<WireMessage> wire;
  std::vector<DeferredReply> finished[kKernels];
  std::uint64_t deferred = 0;
  kif::Selector obtain_first = 30;
  kif::Selector delegate_first = 100;
  int closes = 0;
};

TEST_F(KernelCluster, SessionObtainAndDelegateAcrossKernels) {
  const VpeId server = vpe_on(1, 0);
  const VpeId client = vpe_on(0, 0);
  serve(1, server, "storage");
  open(0, client, 10, "storage");
  const auto* session = kernels[0]->find(client, 10);
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(pe_of(session->parent), server) << "the parent is the service capability on kernel 1";
  EXPECT_EQ(kernels[1]->find(server, 21)->children, std::vector<CapId>{session->id});

  // OBTAIN: the server hands out a memory capability it holds at 30.
  ASSERT_EQ(err(1, server, Syscall::kReqMem, {30, 4096, kif::kPermRW}), Error::kNone);
  ASSERT_FALSE(call(0, client, Syscall::kObtain, {10, 40, 1, 0}).has_value());
  const auto obtain = deferred;
  settle();
  ASSERT_EQ(result_of(0, obtain)->error, Error::kNone);
  const auto* got = kernels[0]->find(client, 40);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->type(), CapType::kMemory);
  EXPECT_EQ(got->parent, kernels[1]->find(server, 30)->id);
  EXPECT_EQ(kernels[1]->find(server, 30)->children, std::vector<CapId>{got->id});
  EXPECT_EQ(std::get<MemoryObject>(got->object).offset,
            std::get<MemoryObject>(kernels[1]->find(server, 30)->object).offset);

  // DELEGATE: the client's own gate goes to the server.
  ASSERT_EQ(err(0, client, Syscall::kCreateGate, {kif::kSelSelf, 50, 6, 9, 2}), Error::kNone);
  const auto at = delegate(0, client, 10, 50);
  const auto* given = kernels[1]->find(server, at);
  ASSERT_NE(given, nullptr);
  EXPECT_EQ(given->parent, kernels[0]->find(client, 50)->id);
  EXPECT_EQ(kernels[0]->find(client, 50)->children, std::vector<CapId>{given->id});
  EXPECT_EQ(std::get<SendGateObject>(given->object).label, 9U);

  // Revoking the server's memory takes the client's copy; the reply waits for it.
  ASSERT_FALSE(call(1, server, Syscall::kRevoke, {30, 1, 1}).has_value());
  const auto revoke = deferred;
  EXPECT_FALSE(result_of(1, revoke).has_value());
  settle();
  EXPECT_EQ(result_of(1, revoke)->error, Error::kNone);
  EXPECT_EQ(kernels[0]->find(client, 40), nullptr);
  // The client's session ends with its VPE: the server hears CLOSE.
  kernels[0]->vpe_exited(client);
  settle();
  EXPECT_EQ(closes, 1);
  EXPECT_TRUE(kernels[1]->find(server, 21)->children.empty());
  EXPECT_EQ(kernels[1]->find(server, at), nullptr) << "what the client delegated went with it";
}

TEST_F(KernelCluster, RevocationSpanningThreeKernelsAnswersOnlyWhenAllAreDone) {
  // a (kernel 0) -> b (kernel 1) -> c (kernel 2), by two delegations.
  const auto [a, b, c, d, at_b, at_c, at_d] = delegation_chain(false);
  ASSERT_NE(kernels[2]->find(c, at_c), nullptr);

  ASSERT_FALSE(call(0, a, Syscall::kRevoke, {60, 1, 1}).has_value());
  const auto revoke = deferred;
  int steps = 0;
  while (deliver_one()) {
    ++steps;
    if (kernels[2]->find(c, at_c) != nullptr) {
      EXPECT_FALSE(result_of(0, revoke).has_value()) << "too early";
    }
  }
  EXPECT_GE(steps, 4) << "revoke a->b, b->c, done c->b, done b->a";
  ASSERT_TRUE(result_of(0, revoke).has_value());
  EXPECT_EQ(kernels[1]->find(b, at_b), nullptr);
  EXPECT_EQ(kernels[2]->find(c, at_c), nullptr);
  EXPECT_EQ(kernels[0]->find(a, 60), nullptr);
}

TEST_F(KernelCluster, OverlappingRevocationsJoinAndEachAnswersOnce) {
  // a (kernel 0) -> b (kernel 1) -> c (kernel 2) -> d (kernel 0 again).
  const auto [a, b, c, d, at_b, at_c, at_d] = delegation_chain(true);
  ASSERT_NE(kernels[0]->find(d, at_d), nullptr);
  // b revokes what it passed on; before that finishes, a revokes the whole
  // tree, whose revocation reaches c's capability while b's holds it.
  ASSERT_FALSE(call(1, b, Syscall::kRevoke, {at_b, 1, 0}).has_value());
  const auto inner = deferred;
  ASSERT_TRUE(deliver_one());  // b -> c: c marks its capability, asks kernel 0 about d's
  ASSERT_FALSE(call(0, a, Syscall::kRevoke, {60, 1, 1}).has_value());
  const auto outer = deferred;
  while (deliver_one()) {
    if (kernels[0]->find(d, at_d) != nullptr) {
      EXPECT_FALSE(result_of(0, outer).has_value()) << "the outer revocation must wait for the inner one";
    }
  }
  answer_service_calls();
  const auto count = [&](KernelId k, std::uint64_t id) {
    return std::count_if(finished[k].begin(), finished[k].end(), [&](const auto& r) { return r.call == id; });
  };
  EXPECT_EQ(count(1, inner), 1);
  EXPECT_EQ(count(0, outer), 1);
  EXPECT_EQ(kernels[0]->find(d, at_d), nullptr);
  EXPECT_EQ(kernels[2]->find(c, at_c), nullptr);
  EXPECT_EQ(kernels[1]->find(b, at_b), nullptr);
  EXPECT_EQ(kernels[0]->find(a, 60), nullptr);
  for (auto& k : kernels) EXPECT_FALSE(k->has_remote_work());
}

// A chain that alternates between two kernels (a delegates, obtains the copy
// back, delegates that, ...), then both of its VPEs exit at once: each
// kernel revokes its links, and each revocation reaches links the other one
// holds. Neither may wait for the other in a circle.
TEST_F(KernelCluster, RevocationsFromBothEndsOfAChainAcrossKernelsBothFinish) {
  const VpeId a = vpe_on(0, 0);
  const VpeId b = vpe_on(1, 0);
  serve(1, b, "one");
  open(0, a, 10, "one");
  ASSERT_EQ(err(0, a, Syscall::kReqMem, {60, 4096, kif::kPermRW}), Error::kNone);
  for (kif::Selector s = 60; s < 66; ++s) {
    obtain_first = delegate(0, a, 10, s);  // the server hands back what it was given
    ASSERT_FALSE(call(0, a, Syscall::kObtain, {10, s + 1, 1, 0}).has_value());
    const auto obtain = deferred;
    settle();
    ASSERT_EQ(result_of(0, obtain)->error, Error::kNone);
  }
  ASSERT_NE(kernels[0]->find(a, 66), nullptr);
  kernels[0]->vpe_exited(a);
  kernels[1]->vpe_exited(b);
  settle();
  for (auto& k : kernels) EXPECT_FALSE(k->has_remote_work()) << "a revocation still waits";
  EXPECT_EQ(kernels[0]->find(a, 60), nullptr);
  EXPECT_EQ(kernels[0]->find(a, 66), nullptr);
  EXPECT_EQ(kernels[1]->find(b, obtain_first), nullptr);
}

// Many revocations at once over a chain through three kernels, the
// kernelcalls of different kernel pairs interleaved at random (one seed per
// instance): every revocation answers exactly once, nothing is left waiting.
class KernelClusterInterleavings : public KernelCluster, public ::testing::WithParamInterface<int> {};

TEST_P(KernelClusterInterleavings, ConcurrentRevocationsAllFinish) {
  const VpeId a = vpe_on(0, 0);
  const VpeId b = vpe_on(1, 0);
  const VpeId c = vpe_on(2, 0);
  serve(1, b, "one");
  serve(2, c, "two");
  open(0, a, 10, "one");
  open(0, a, 11, "two");
  ASSERT_EQ(err(0, a, Syscall::kReqMem, {60, 4096, kif::kPermRW}), Error::kNone);
  constexpr kif::Selector kLinks = 12;  // a's links: 60..72, b's and c's between them
  for (kif::Selector s = 60; s < 60 + kLinks; ++s) {
    obtain_first = delegate(0, a, s % 2 == 0 ? 10 : 11, s);
    ASSERT_FALSE(call(0, a, Syscall::kObtain, {s % 2 == 0 ? 10U : 11U, s + 1, 1, 0}).has_value());
    const auto obtain = deferred;
    settle();
    ASSERT_EQ(result_of(0, obtain)->error, Error::kNone);
  }
  std::mt19937 rng(static_cast<std::mt19937::result_type>(GetParam()));
  std::vector<std::uint64_t> revokes;
  for (kif::Selector s : {62U, 65U, 66U, 70U}) {  // overlapping subtrees of the chain
    ASSERT_FALSE(call(0, a, Syscall::kRevoke, {s, 1, s % 2}).has_value());
    revokes.push_back(deferred);
    for (int i = 0; i < 3; ++i) deliver_random(rng);
  }
  kernels[1]->vpe_exited(b);  // and b's copies: everything below a's first link
  while (deliver_random(rng)) {
  }
  answer_service_calls();
  for (auto id : revokes) {
    EXPECT_EQ(
        std::count_if(finished[0].begin(), finished[0].end(), [&](const auto& r) { return r.call == id; }), 1)
        << "revoke " << id;
  }
  for (auto& k : kernels) EXPECT_FALSE(k->has_remote_work()) << "a revocation still waits";
  EXPECT_NE(kernels[0]->find(a, 60), nullptr) << "the root stays";
  EXPECT_TRUE(kernels[0]->find(a, 60)->children.empty());
  for (kif::Selector s = 61; s <= 60 + kLinks; ++s) EXPECT_EQ(kernels[0]->find(a, s), nullptr) << s;
}

INSTANTIATE_TEST_SUITE_P(Seeds, KernelClusterInterleavings, ::testing::Range(1, 41));

TEST_F(KernelCluster, AKernelThatDisappearsEndsWhatWaitedForIt) {
  const auto [a, b, c, d, at_b, at_c, at_d] = delegation_chain(false);
  ASSERT_EQ(err(2, c, Syscall::kReqMem, {70, 4096, kif::kPermRW}), Error::kNone);
  ASSERT_FALSE(call(0, a, Syscall::kRevoke, {60, 1, 1}).has_value());
  const auto revoke = deferred;
  // a -> b arrives, b asks c; c dies before answering.
  ASSERT_TRUE(deliver_one());
  collect();
  std::erase_if(wire, [](const auto& m) { return m.to == 2 || m.from == 2; });
  kernels[1]->kernel_gone(2);
  kernels[0]->kernel_gone(2);
  settle();
  ASSERT_TRUE(result_of(0, revoke).has_value());
  EXPECT_EQ(result_of(0, revoke)->error, Error::kNone);
  EXPECT_EQ(kernels[1]->find(b, at_b), nullptr);
  // b's session to the dead kernel's service derived from it: gone too.
  EXPECT_EQ(kernels[1]->find(b, 10), nullptr);
  // and a new session to its service fails at once.
  auto r = call(1, b, Syscall::kCreateSess, {11, 0}, "two");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->error, Error::kNoSuchService);
}

// An answer naming an id that is in use already never replaces that
// capability: it is refused and counted, and the call fails.
TEST_F(KernelCluster, AnIdInUseArrivingInAKernelcallIsRefusedNotOverwritten) {
  const VpeId server = vpe_on(1, 0);
  const VpeId client = vpe_on(0, 0);
  serve(1, server, "storage");
  open(0, client, 10, "storage");
  ASSERT_EQ(err(0, client, Syscall::kReqMem, {20, 4096, kif::kPermRW}), Error::kNone);
  const CapId taken = kernels[0]->find(client, 20)->id;
  ASSERT_FALSE(call(0, client, Syscall::kObtain, {10, 40, 1, 0}).has_value());
  const auto obtain = deferred;
  collect();
  ASSERT_EQ(wire.size(), 1U);
  const auto request = wire.front().message;
  wire.clear();
  // Kernel 1 answers with the id of the client's memory capability.
  auto forged = make_kernelcall(Kernelcall::kObtainReply, request.call);
  forged.count = 1;
  forged.caps[0].id = taken;
  forged.caps[0].parent = kernels[1]->find(server, 21)->id;
  forged.caps[0].words[2] = 4096;
  kernels[0]->kernelcall(1, std::as_bytes(std::span(&forged, 1)));
  EXPECT_EQ(kernels[0]->refused_ids(), 1U);
  answer_service_calls();
  ASSERT_TRUE(result_of(0, obtain).has_value());
  EXPECT_EQ(result_of(0, obtain)->error, Error::kServiceFailed);
  EXPECT_EQ(kernels[0]->find(client, 40), nullptr);
  ASSERT_EQ(kernels[0]->find(taken), kernels[0]->find(client, 20)) << "the capability in use is untouched";
  EXPECT_EQ(kernels[0]->find(taken)->selector, 20U);
}

// A kernel's repeated id is not linked twice under one parent.
TEST_F(KernelCluster, ARepeatedChildIdFromAnotherKernelIsRefused) {
  const VpeId server = vpe_on(1, 0);
  serve(1, server, "storage");
  open(0, vpe_on(0, 0), 10, "storage");
  const CapId session = kernels[0]->find(vpe_on(0, 0), 10)->id;
  auto again = make_kernelcall(Kernelcall::kOpenSession, 999);
  set_name(again, "storage");
  again.count = 1;
  again.ids[0] = session;  // kernel 0 asks for a session with an id it used already
  kernels[1]->kernelcall(0, std::as_bytes(std::span(&again, 1)));
  answer_service_calls();
  EXPECT_EQ(kernels[1]->refused_ids(), 1U);
  EXPECT_EQ(kernels[1]->find(server, 21)->children, std::vector<CapId>{session});
  collect();
  ASSERT_EQ(wire.size(), 1U);
  EXPECT_EQ(wire.front().message.op, Kernelcall::kOpenSessionReply);
  EXPECT_NE(wire.front().message.error, Error::kNone);
}

// REQMEM's region returns to the allocator only when the copies on other
// kernels are revoked too: until then a remote holder may still write it.
TEST_F(KernelCluster, AMemoryRegionIsFreedOnlyWhenItsRemoteCopiesAreGone) {
  const VpeId a = vpe_on(0, 0);
  const VpeId b = vpe_on(1, 0);
  serve(1, b, "one");
  open(0, a, 10, "one");
  ASSERT_EQ(err(0, a, Syscall::kReqMem, {60, 1 << 20, kif::kPermRW}), Error::kNone);  // all of kernel 0's
  const auto at_b = delegate(0, a, 10, 60);
  ASSERT_NE(kernels[1]->find(b, at_b), nullptr);
  ASSERT_FALSE(call(0, a, Syscall::kRevoke, {60, 1, 1}).has_value());
  const auto revoke = deferred;
  EXPECT_EQ(err(0, vpe_on(0, 1), Syscall::kReqMem, {20, 64, kif::kPermRW}), Error::kOutOfMemory)
      << "kernel 1 has not revoked its copy yet";
  settle();
  ASSERT_TRUE(result_of(0, revoke).has_value());
  EXPECT_EQ(kernels[1]->find(b, at_b), nullptr);
  EXPECT_EQ(err(0, vpe_on(0, 1), Syscall::kReqMem, {20, 1 << 20, kif::kPermRW}), Error::kNone);
}

TEST_F(KernelCluster, ForgedOrMalformedKernelcallsAreCountedAndIgnored) {
  KernelcallMessage m{};
  m.op = static_cast<Kernelcall>(99);
  kernels[0]->kernelcall(1, std::as_bytes(std::span(&m, 1)));
  kernels[0]->kernelcall(7, std::as_bytes(std::span(&m, 1)));  // no such kernel
  std::array<std::byte, 3> short_message{};
  kernels[0]->kernelcall(1, short_message);
  std::array<std::byte, sizeof(KernelcallMessage) + 8> long_message{};
  kernels[0]->kernelcall(1, long_message);
  m.op = Kernelcall::kRevokeDone;
  m.call = 12345;  // no such revocation
  kernels[0]->kernelcall(1, wire_bytes(m));
  EXPECT_EQ(kernels[0]->malformed_kernelcalls(), 4U);
  EXPECT_TRUE(kernels[0]->take_kernelcalls().empty());
}

}  // namespace
}  // namespace vdtu::kernel
