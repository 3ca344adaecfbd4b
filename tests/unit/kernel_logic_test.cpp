// The kernel's logic in-process: capability ids, derivation links, atomicity,
// deferred service calls when callers or servers vanish, the allocator. The
// process-level behaviour is in tests/integration/kernel_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include "kernel/kernel.hpp"

namespace vdtu::kernel {
namespace {

using kif::Error;
using kif::Syscall;

struct Cleared {
  PeId pe;
  std::uint64_t offset;
  std::uint64_t size;
  bool operator==(const Cleared&) const = default;
};

// Accepts every endpoint operation (memory clears: unless told otherwise)
// and remembers the invalidations and clears.
class RecordingEndpoints final : public EndpointControl {
 public:
  Status config_send(PeId, EpId, const SendConfig&) override { return Status::kOk; }
  Status config_receive(PeId, EpId, const ReceiveConfig&) override { return Status::kOk; }
  Status config_memory(PeId, EpId, const MemoryConfig&) override { return Status::kOk; }
  Status invalidate(PeId pe, EpId ep) override {
    invalidated.emplace_back(pe, ep);
    return Status::kOk;
  }
  Status clear_memory(PeId pe, std::uint64_t offset, std::uint64_t size) override {
    if (clear_fails) return Status::kOutOfBounds;
    cleared.push_back({pe, offset, size});
    return Status::kOk;
  }
  Status launch(const std::vector<std::string>&, PeId& pe) override {
    pe = 50;
    return Status::kOk;
  }
  std::vector<std::pair<PeId, EpId>> invalidated;
  std::vector<Cleared> cleared;
  bool clear_fails = false;
};

KernelConfig small_config(PeId kernel_pe = 100) {
  KernelConfig c;
  c.kernel_pe = kernel_pe;
  c.endpoints_per_pe = 16;
  c.global_memory_bytes = 1 << 20;
  c.pe_memory_bytes = 1 << 16;
  return c;
}

class KernelLogic : public ::testing::Test {
 protected:
  KernelLogic() {
    for (VpeId v : {1, 2}) EXPECT_EQ(kernel.boot_vpe(v, v), Status::kOk);
    EXPECT_EQ(kernel.grant_vpe(1, 2, 10), Error::kNone);
  }
  kif::SyscallReply call(VpeId vpe, Syscall op, std::vector<std::uint64_t> args, std::string_view name = {}) {
    kif::SyscallRequest r{};
    r.opcode = op;
    std::copy(args.begin(), args.end(), r.args);
    r.name_length = name.size();
    std::copy(name.begin(), name.end(), r.name);
    std::uint64_t deferred = 0;
    auto reply = kernel.syscall(vpe, std::as_bytes(std::span(&r, 1)), deferred);
    last_deferred = deferred;
    return reply.value_or(kif::SyscallReply{Error::kServiceFailed, {~std::uint64_t{0}}});
  }
  Error err(VpeId vpe, Syscall op, std::vector<std::uint64_t> args, std::string_view name = {}) {
    return call(vpe, op, std::move(args), name).error;
  }

  RecordingEndpoints endpoints;
  Kernel kernel{small_config(), endpoints};
  std::uint64_t last_deferred = 0;
};

TEST_F(KernelLogic, IdsSayWhoCreatedWhat) {
  ASSERT_EQ(err(1, Syscall::kReqMem, {20, 4096, kif::kPermRW}), Error::kNone);
  const auto* cap = kernel.find(1, 20);
  ASSERT_NE(cap, nullptr);
  EXPECT_EQ(pe_of(cap->id), 1);
  EXPECT_EQ(vpe_of(cap->id), 1);
  EXPECT_EQ(type_of(cap->id), CapType::kMemory);
  ASSERT_EQ(err(1, Syscall::kExchange, {10, 20, 30, 1, 0}), Error::kNone);
  const auto* child = kernel.find(2, 30);
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(vpe_of(child->id), 2) << "the clone is created for its new owner";
  EXPECT_EQ(child->parent, cap->id);
  EXPECT_EQ(cap->children, std::vector<CapId>{child->id});
}

TEST_F(KernelLogic, RevokingAChildUnlinksItFromItsParent) {
  ASSERT_EQ(err(1, Syscall::kReqMem, {20, 4096, kif::kPermRW}), Error::kNone);
  ASSERT_EQ(err(1, Syscall::kExchange, {10, 20, 30, 1, 0}), Error::kNone);
  ASSERT_EQ(err(2, Syscall::kRevoke, {30, 1, 1}), Error::kNone);
  EXPECT_TRUE(kernel.find(1, 20)->children.empty());
}

TEST_F(KernelLogic, ExchangeIsAllOrNothing) {
  for (std::uint64_t s = 20; s < 23; ++s)
    ASSERT_EQ(err(1, Syscall::kReqMem, {s, 64, kif::kPermR}), Error::kNone);
  ASSERT_EQ(err(2, Syscall::kReqMem, {32, 64, kif::kPermR}), Error::kNone);  // occupies the third target
  const auto before = kernel.capability_count();
  EXPECT_EQ(err(1, Syscall::kExchange, {10, 20, 30, 3, 0}), Error::kSelectorInUse);
  EXPECT_EQ(kernel.capability_count(), before);
  EXPECT_EQ(kernel.find(2, 30), nullptr);
  EXPECT_EQ(err(1, Syscall::kExchange, {10, 20, 40, 4, 0}), Error::kNoSuchCap) << "source 23 is empty";
  EXPECT_EQ(kernel.capability_count(), before);
}

TEST_F(KernelLogic, RevokingAnActivatedCapabilityInvalidatesItsEndpoint) {
  ASSERT_EQ(err(1, Syscall::kReqMem, {20, 4096, kif::kPermRW}), Error::kNone);
  ASSERT_EQ(err(1, Syscall::kExchange, {10, 20, 30, 1, 0}), Error::kNone);
  ASSERT_EQ(err(2, Syscall::kActivate, {30, 5, 255, 0}), Error::kNone);
  ASSERT_EQ(err(1, Syscall::kRevoke, {20, 1, 1}), Error::kNone);
  EXPECT_EQ(endpoints.invalidated, (std::vector<std::pair<PeId, EpId>>{{2, 5}}));
}

TEST_F(KernelLogic, ReqMemRegionsReturnWhenTheRootGoes) {
  ASSERT_EQ(err(1, Syscall::kReqMem, {20, 1 << 20, kif::kPermRW}), Error::kNone);
  EXPECT_EQ(err(1, Syscall::kReqMem, {21, 64, kif::kPermRW}), Error::kOutOfMemory) << "all of it is taken";
  ASSERT_EQ(err(1, Syscall::kExchange, {10, 20, 30, 1, 0}), Error::kNone);
  ASSERT_EQ(err(2, Syscall::kRevoke, {30, 1, 1}), Error::kNone);
  EXPECT_EQ(err(1, Syscall::kReqMem, {21, 64, kif::kPermRW}), Error::kOutOfMemory) << "a clone frees nothing";
  ASSERT_EQ(err(1, Syscall::kRevoke, {20, 1, 1}), Error::kNone);
  EXPECT_EQ(err(1, Syscall::kReqMem, {21, 1 << 20, kif::kPermRW}), Error::kNone);
}

TEST_F(KernelLogic, ServiceCallsWaitForTheServerAndSurviveNothingStale) {
  ASSERT_EQ(err(2, Syscall::kCreateGate, {0, 20, 3, 7, 4}), Error::kNone);
  ASSERT_EQ(err(2, Syscall::kCreateSrv, {21, 20}, "srv"), Error::kNone);
  ASSERT_EQ(call(1, Syscall::kCreateSess, {30, 5}, "srv").values[0], ~std::uint64_t{0}) << "deferred";
  const auto open = last_deferred;
  const auto outbox = kernel.take_outbox();
  ASSERT_EQ(outbox.size(), 1U);
  EXPECT_EQ(outbox[0].request.op, kif::ServiceOp::kOpen);
  EXPECT_EQ(outbox[0].request.arg, 5U);
  kif::ServiceReply answer{};
  answer.ident = 77;
  const auto done = kernel.service_reply(open, answer);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->caller, 1);
  EXPECT_EQ(done->reply.error, Error::kNone);
  EXPECT_FALSE(kernel.service_reply(open, answer).has_value()) << "a second answer is ignored";
  const auto* session = kernel.find(1, 30);
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(std::get<SessionObject>(session->object).ident, 77U);
  // A call pending when the server dies fails; revoking the service took the session.
  call(1, Syscall::kObtain, {30, 40, 1, 0});
  const auto obtain = last_deferred;
  EXPECT_TRUE(kernel.vpe_exited(2).empty()) << "nobody waited for VPE 2's exit";
  const auto failed = kernel.take_finished();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].call, obtain);
  EXPECT_EQ(failed[0].reply.error, Error::kServiceFailed);
  EXPECT_EQ(kernel.find(1, 30), nullptr);
  EXPECT_EQ(err(1, Syscall::kCreateSess, {31, 0}, "srv"), Error::kNoSuchService);
}

TEST_F(KernelLogic, EndingASessionClosesItAndLastServersShutDown) {
  ASSERT_EQ(err(2, Syscall::kCreateGate, {0, 20, 3, 7, 4}), Error::kNone);
  ASSERT_EQ(err(2, Syscall::kCreateSrv, {21, 20}, "srv"), Error::kNone);
  call(1, Syscall::kCreateSess, {30, 0}, "srv");
  kif::ServiceReply answer{};
  answer.ident = 9;
  ASSERT_TRUE(kernel.service_reply(last_deferred, answer).has_value());
  kernel.take_outbox();
  EXPECT_EQ(kernel.alive_clients(), 1U) << "VPE 2 serves, VPE 1 is a client";
  ASSERT_EQ(err(1, Syscall::kRevoke, {30, 1, 1}), Error::kNone);
  auto out = kernel.take_outbox();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].request.op, kif::ServiceOp::kClose);
  EXPECT_EQ(out[0].request.ident, 9U);
  kernel.vpe_exited(1);
  EXPECT_EQ(kernel.alive_clients(), 0U);
  kernel.shut_down_services();
  out = kernel.take_outbox();
  ASSERT_EQ(out.size(), 1U);
  EXPECT_EQ(out[0].request.op, kif::ServiceOp::kShutdown);
}

TEST_F(KernelLogic, AnswersForACallerThatDiedAreDropped) {
  ASSERT_EQ(err(2, Syscall::kCreateGate, {0, 20, 3, 7, 4}), Error::kNone);
  ASSERT_EQ(err(2, Syscall::kCreateSrv, {21, 20}, "srv"), Error::kNone);
  call(1, Syscall::kCreateSess, {30, 0}, "srv");
  const auto open = last_deferred;
  kernel.vpe_exited(1);
  EXPECT_FALSE(kernel.service_reply(open, {}).has_value());
}

TEST_F(KernelLogic, WaitersLearnTheExitCode) {
  const auto created = call(1, Syscall::kCreateVpe, {40}, "prog arg");
  ASSERT_EQ(created.error, Error::kNone);
  EXPECT_EQ(created.values[0], 50U);
  EXPECT_EQ(err(1, Syscall::kVpeCtrl, {40, 0}), Error::kNone);  // start
  call(1, Syscall::kVpeCtrl, {40, 1});                          // wait
  const auto wait = last_deferred;
  const auto done = kernel.vpe_exited(50, 3);
  ASSERT_EQ(done.size(), 1U);
  EXPECT_EQ(done[0].call, wait);
  EXPECT_EQ(done[0].reply.values[0], 3U);
  EXPECT_EQ(call(1, Syscall::kVpeCtrl, {40, 1}).values[0], 3U) << "after the fact: at once";
}

// ---- capability ids ---------------------------------------------------------------

// The allocation path alone, genuinely past 2^24: each id exceeds the one
// before, and none equals the id a 24-bit counter would have handed out
// again (2^24 allocations earlier).
TEST(CapIdAllocator, MoreThan2To24IdsNeverRepeatOne) {
  constexpr std::uint64_t kWrap = std::uint64_t{1} << 24U;
  constexpr std::uint64_t kBeyond = 4096;
  CapIdAllocator ids;
  std::vector<CapId> first;
  first.reserve(kBeyond);
  CapId previous = kNoCap;
  std::uint64_t not_increasing = 0;
  std::uint64_t repeated = 0;
  for (std::uint64_t i = 0; i < kWrap + kBeyond; ++i) {
    const CapId id = ids.next(7, 7, CapType::kMemory);
    not_increasing += id.object > previous.object ? 0 : 1;
    if (i < kBeyond) first.push_back(id);
    if (i >= kWrap) repeated += id == first[i - kWrap] ? 1 : 0;
    previous = id;
  }
  EXPECT_EQ(not_increasing, 0U);
  EXPECT_EQ(repeated, 0U);
  EXPECT_EQ(previous.object, kWrap + kBeyond);
}

// The same through the kernel, with the counter skipped ahead so that a few
// thousand creations cross the point where a counter of `boundary` wraps
// onto the number of a delegated child: no id repeats, and revoking the
// parent still reaches the child (a repeated id used to replace it in the
// index, and the revocation missed it).
class KernelIds : public KernelLogic, public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(KernelIds, NoIdRepeatsAcrossTheWrapAndRevocationFindsTheDelegatedChild) {
  const std::uint64_t boundary = GetParam();
  ASSERT_EQ(err(1, Syscall::kReqMem, {20, 4096, kif::kPermRW}), Error::kNone);
  ASSERT_EQ(err(1, Syscall::kExchange, {10, 20, 30, 1, 0}), Error::kNone);  // delegated to VPE 2
  const CapId root = kernel.find(1, 20)->id;
  const CapId child = kernel.find(2, 30)->id;
  std::set<CapId> seen{root, child};
  kernel.skip_object_ids(boundary - 1000);
  std::uint64_t highest = 0;
  for (int i = 0; i < 3000; ++i) {
    // VPE 2's memory capabilities: same PE, VPE and type as the child.
    ASSERT_EQ(err(2, Syscall::kDeriveMem, {kif::kSelMemory, 40, 0, 64, kif::kPermR}), Error::kNone);
    const CapId fresh = kernel.find(2, 40)->id;
    ASSERT_TRUE(seen.insert(fresh).second) << "id of object " << fresh.object << " repeated";
    highest = std::max(highest, fresh.object);
    ASSERT_EQ(err(2, Syscall::kRevoke, {40, 1, 1}), Error::kNone);
  }
  EXPECT_GT(highest, boundary + child.object) << "the loop crossed the wrap onto the child's number";
  ASSERT_EQ(err(1, Syscall::kRevoke, {20, 1, 1}), Error::kNone);
  EXPECT_EQ(kernel.find(2, 30), nullptr) << "the delegated child was revoked";
  EXPECT_EQ(kernel.find(child), nullptr);
  EXPECT_EQ(kernel.refused_ids(), 0U);
}

INSTANTIATE_TEST_SUITE_P(Wraps, KernelIds,
                         ::testing::Values(std::uint64_t{1} << 24U, std::uint64_t{1} << 32U));

TEST_F(KernelLogic, NoCapabilityIsCreatedOnceTheIdsRunOut) {
  kernel.skip_object_ids(~std::uint64_t{0});
  const auto before = kernel.capability_count();
  EXPECT_EQ(err(1, Syscall::kReqMem, {20, 4096, kif::kPermRW}), Error::kOutOfMemory);
  EXPECT_EQ(err(1, Syscall::kExchange, {10, 1, 30, 1, 0}), Error::kOutOfMemory);
  EXPECT_EQ(kernel.capability_count(), before);
}

TEST_F(KernelLogic, BootingAVpeAgainCreatesNothingTwice) {
  const auto before = kernel.capability_count();
  EXPECT_EQ(kernel.boot_vpe(1, 1), Status::kOk);
  EXPECT_EQ(kernel.capability_count(), before);
}

// ---- REQMEM hands out zeroed memory -------------------------------------------------

TEST_F(KernelLogic, ReqMemClearsTheRegionItHandsOut) {
  ASSERT_EQ(call(1, Syscall::kReqMem, {20, 5000, kif::kPermRW}).values[0], 0U);
  const auto second = call(1, Syscall::kReqMem, {21, 100, kif::kPermRW});
  ASSERT_EQ(second.error, Error::kNone);
  EXPECT_EQ(endpoints.cleared,
            (std::vector<Cleared>{{kGlobalMemoryPe, 0, 5000}, {kGlobalMemoryPe, second.values[0], 100}}));
  // A region that cannot be cleared is not handed out, and not lost either.
  endpoints.clear_fails = true;
  EXPECT_EQ(err(1, Syscall::kReqMem, {22, 4096, kif::kPermRW}), Error::kEndpointFailed);
  EXPECT_EQ(kernel.find(1, 22), nullptr);
  endpoints.clear_fails = false;
  ASSERT_EQ(err(1, Syscall::kRevoke, {20, 2, 1}), Error::kNone);
  EXPECT_EQ(err(1, Syscall::kReqMem, {22, 1 << 20, kif::kPermRW}), Error::kNone) << "all of it is free again";
}

// ---- service calls never block the kernel -------------------------------------------

class KernelServiceQueue : public KernelLogic {
 protected:
  KernelServiceQueue() {
    for (VpeId v : {3, 4, 5}) EXPECT_EQ(kernel.boot_vpe(v, v), Status::kOk);
    EXPECT_EQ(err(2, Syscall::kCreateGate, {0, 20, 3, 7, 4}), Error::kNone);
    EXPECT_EQ(err(2, Syscall::kCreateSrv, {21, 20}, "srv"), Error::kNone);
  }
  // Opens a session of `vpe` at selector 30 (deferred); returns the call.
  std::uint64_t open(VpeId vpe, std::uint64_t arg) {
    EXPECT_EQ(call(vpe, Syscall::kCreateSess, {30, arg}, "srv").values[0], ~std::uint64_t{0}) << "deferred";
    return last_deferred;
  }
  // One round of the kernel loop against a server that takes `room` calls.
  std::vector<ServiceCall> pump(int room, Status refusal = Status::kFull) {
    std::vector<ServiceCall> taken;
    kernel.pump_service_calls([&](const ServiceCall& c) {
      if (room-- <= 0) return refusal;
      taken.push_back(c);
      return Status::kOk;
    });
    return taken;
  }
  static kif::ServiceReply opened(std::uint64_t ident) {
    kif::ServiceReply r{};
    r.ident = ident;
    return r;
  }
};

TEST_F(KernelServiceQueue, ASlowServerKeepsItsCallsInOrderAndOthersAreServed) {
  std::vector<std::uint64_t> calls;
  for (VpeId v : {1, 3, 4}) calls.push_back(open(v, v));
  EXPECT_TRUE(pump(0).empty()) << "the server takes nothing yet";
  EXPECT_TRUE(kernel.has_queued_service_calls());
  EXPECT_EQ(err(5, Syscall::kNoop, {}), Error::kNone) << "meanwhile others are served";
  EXPECT_EQ(err(5, Syscall::kReqMem, {20, 64, kif::kPermRW}), Error::kNone);
  auto taken = pump(1);
  ASSERT_EQ(taken.size(), 1U);
  EXPECT_EQ(taken[0].id, calls[0]);
  EXPECT_EQ(taken[0].request.arg, 1U);
  taken = pump(10);
  ASSERT_EQ(taken.size(), 2U) << "nothing dropped";
  EXPECT_EQ(taken[0].id, calls[1]);
  EXPECT_EQ(taken[1].id, calls[2]);
  EXPECT_FALSE(kernel.has_queued_service_calls());
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const auto done = kernel.service_reply(calls[i], opened(100 + i));
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(done->reply.error, Error::kNone);
  }
}

TEST_F(KernelServiceQueue, AFullQueueAnswersBusyAtOnce) {
  RecordingEndpoints others;
  KernelConfig config = small_config();
  config.max_queued_service_calls = 2;
  Kernel k(config, others);
  for (VpeId v : {1, 2, 3, 4}) ASSERT_EQ(k.boot_vpe(v, v), Status::kOk);
  auto syscall = [&](VpeId v, Syscall op, std::vector<std::uint64_t> args, std::string_view name = {}) {
    kif::SyscallRequest r{};
    r.opcode = op;
    std::copy(args.begin(), args.end(), r.args);
    r.name_length = name.size();
    std::copy(name.begin(), name.end(), r.name);
    std::uint64_t deferred = 0;
    return k.syscall(v, std::as_bytes(std::span(&r, 1)), deferred);
  };
  ASSERT_EQ(syscall(2, Syscall::kCreateGate, {0, 20, 3, 7, 4})->error, Error::kNone);
  ASSERT_EQ(syscall(2, Syscall::kCreateSrv, {21, 20}, "srv")->error, Error::kNone);
  EXPECT_FALSE(syscall(1, Syscall::kCreateSess, {30, 0}, "srv").has_value());
  EXPECT_FALSE(syscall(3, Syscall::kCreateSess, {30, 0}, "srv").has_value());
  const auto busy = syscall(4, Syscall::kCreateSess, {30, 0}, "srv");
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(busy->error, Error::kServiceBusy);
  EXPECT_EQ(k.find(4, 30), nullptr);
  // Once the server took them, there is room again.
  k.pump_service_calls([](const ServiceCall&) { return Status::kOk; });
  EXPECT_FALSE(syscall(4, Syscall::kCreateSess, {30, 0}, "srv").has_value());
}

TEST_F(KernelServiceQueue, CallsToAServiceThatGoesAwayFail) {
  const auto sent = open(1, 1);
  ASSERT_EQ(pump(1).size(), 1U);
  const auto queued = open(3, 3);
  ASSERT_TRUE(pump(0).empty());
  // The server revokes its service (it does not exit): both calls end now.
  ASSERT_EQ(err(2, Syscall::kRevoke, {21, 1, 1}), Error::kNone);
  auto failed = kernel.take_finished();
  ASSERT_EQ(failed.size(), 2U);
  std::sort(failed.begin(), failed.end(), [](const auto& a, const auto& b) { return a.call < b.call; });
  EXPECT_EQ(failed[0].call, sent);
  EXPECT_EQ(failed[1].call, queued);
  for (const auto& f : failed) EXPECT_EQ(f.reply.error, Error::kServiceFailed);
  EXPECT_FALSE(kernel.has_queued_service_calls());
  EXPECT_FALSE(kernel.has_pending_calls());
  EXPECT_FALSE(kernel.service_reply(sent, opened(1)).has_value()) << "a late answer changes nothing";
  EXPECT_EQ(kernel.find(1, 30), nullptr);
}

TEST_F(KernelServiceQueue, ACallTheDtuRefusesFailsAndACallerThatDiedIsNotSent) {
  const auto refused = open(1, 1);
  ASSERT_TRUE(pump(0, Status::kNotConfigured).empty());
  auto failed = kernel.take_finished();
  ASSERT_EQ(failed.size(), 1U);
  EXPECT_EQ(failed[0].call, refused);
  EXPECT_EQ(failed[0].reply.error, Error::kServiceFailed);
  open(3, 3);
  kernel.vpe_exited(3);
  EXPECT_TRUE(pump(10).empty()) << "nobody waits for it";
  EXPECT_FALSE(kernel.has_queued_service_calls());
}

TEST(MemoryAllocator, MergesFreedNeighbours) {
  MemoryAllocator a(4096);
  const auto x = a.allocate(1024);
  const auto y = a.allocate(1024);
  const auto z = a.allocate(2048);
  ASSERT_TRUE(x && y && z);
  EXPECT_FALSE(a.allocate(64));
  a.release(*y, 1024);
  a.release(*x, 1024);
  EXPECT_EQ(a.allocate(2048), 0U) << "x and y merged";
  a.release(0, 2048);
  a.release(*z, 2048);
  EXPECT_EQ(a.free_bytes(), 4096U);
  EXPECT_EQ(a.allocate(4096), 0U);
}

}  // namespace
}  // namespace vdtu::kernel
