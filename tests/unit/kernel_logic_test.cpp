// The kernel's logic in-process: capability ids, derivation links, atomicity,
// deferred service calls when callers or servers vanish, the allocator. The
// process-level behaviour is in tests/integration/kernel_test.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernel/kernel.hpp"

namespace vdtu::kernel {
namespace {

using kif::Error;
using kif::Syscall;

// Accepts every endpoint operation and remembers the invalidations.
class RecordingEndpoints final : public EndpointControl {
 public:
  Status config_send(PeId, EpId, const SendConfig&) override { return Status::kOk; }
  Status config_receive(PeId, EpId, const ReceiveConfig&) override { return Status::kOk; }
  Status config_memory(PeId, EpId, const MemoryConfig&) override { return Status::kOk; }
  Status invalidate(PeId pe, EpId ep) override {
    invalidated.emplace_back(pe, ep);
    return Status::kOk;
  }
  Status launch(const std::vector<std::string>&, PeId& pe) override {
    pe = 50;
    return Status::kOk;
  }
  std::vector<std::pair<PeId, EpId>> invalidated;
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
  const auto failed = kernel.vpe_exited(2);
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
