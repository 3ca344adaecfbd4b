// A VPE program for the kernel integration tests: the seL4 port's eleven
// on-target tests and more, as real VPE processes talking to the kernel
// through the vDTU. The role comes from argv; exit code 0 means every check
// passed.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "common/backoff.hpp"
#include "vdtu/semper.hpp"

using namespace vdtu;
using namespace vdtu::semper;
using namespace std::chrono_literals;
using vdtu::kif::to_string;

namespace {

using Args = std::vector<std::string>;

constexpr Selector kPeerVpe = 10;  // granted at boot: the other VPE
constexpr EpId kMailboxRecv = 4;
constexpr EpId kMailboxSend = 5;
constexpr Selector kMailboxOwnGate = 40;
constexpr Selector kMailboxPeerGate = 41;

std::span<const std::byte> text(const char* s) { return std::as_bytes(std::span(s, std::strlen(s))); }
std::string as_text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Retries while the capability is not there yet (the peer has not delegated
// it). For a minute: with a thousand VPEs on a busy 2-core machine a server
// can take that long to be set up, and only a failing run waits it out.
template <class Call>
Error eventually(Call call, Error while_this = Error::kNoSuchCap) {
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  Backoff backoff(5ms, 100ms);  // a thousand VPEs retrying must not swamp their kernel
  while (std::chrono::steady_clock::now() < give_up) {
    const Error e = call();
    if (e != while_this) return e;
    backoff.sleep();
  }
  return while_this;
}

// Retries while the server's queue is full (kServiceBusy: hundreds of VPEs
// calling one server at once, as in the scale tests).
template <class Call>
Error patiently(Call call) {
  Backoff backoff(1ms, 50ms);
  for (;;) {
    const Error e = call();
    if (e != Error::kServiceBusy) return e;
    backoff.sleep();
  }
}

// Two VPEs that hold each other's VPE capability build a message path both
// ways through the kernel, to tell each other when a step is done.
class Mailbox {
 public:
  explicit Mailbox(Syscalls& sys) : sys_(sys) {
    CHECK_STATUS(sys.attach_rb(kMailboxRecv, 10, 6), Error::kNone);
    CHECK_STATUS(sys.create_gate(kif::kSelSelf, kMailboxOwnGate, kMailboxRecv, 0x6d61696c, 8), Error::kNone);
    CHECK_STATUS(sys.delegate_to(kPeerVpe, kMailboxOwnGate, kMailboxPeerGate), Error::kNone);
    CHECK_STATUS(eventually([&] { return sys.activate(kMailboxPeerGate, kMailboxSend, kNoReplyEp, 32); }),
                 Error::kNone);
    CHECK_STATUS(sys.dtu().wait_for_endpoint(kMailboxSend, EndpointKind::kSend), Status::kOk);
  }
  void post(std::uint64_t step) {
    CHECK_STATUS(sys_.dtu().send(kMailboxSend, std::as_bytes(std::span(&step, 1)), 0, SendMode::kWait),
                 Status::kOk);
  }
  void await(std::uint64_t step) { CHECK(take() == step); }
  std::uint64_t take() {
    ReceivedMessage m;
    CHECK_STATUS(sys_.dtu().receive(kMailboxRecv, m, 30s), Status::kOk);
    std::uint64_t got = 0;
    CHECK(m.payload.size() == sizeof(got));
    std::memcpy(&got, m.payload.data(), sizeof(got));
    sys_.dtu().ack(m);
    return got;
  }

 private:
  Syscalls& sys_;
};

Error raw_call(Syscalls& sys, std::span<const std::byte> message) {
  kif::SyscallReply reply{};
  return sys.call_raw(message, reply);
}

// seL4 tests 1-5 and 11, plus malformed requests; one VPE alone.
int basics(Syscalls& sys, const Args&) {
  for (int i = 0; i < 3; ++i) CHECK_STATUS(sys.noop(), Error::kNone);          // 1
  CHECK_STATUS(sys.create_gate(kif::kSelSelf, 5, 2, 0xabc, 4), Error::kNone);  // 2
  CHECK_STATUS(sys.create_gate(kif::kSelSelf, 5, 2, 0xabc, 4), Error::kSelectorInUse);
  CHECK_STATUS(sys.revoke(5), Error::kNone);        // 3
  CHECK_STATUS(sys.revoke(5), Error::kNoSuchCap);   // 4: now empty
  CHECK_STATUS(sys.revoke(99), Error::kNoSuchCap);  // 4
  for (int i = 0; i < 3; ++i) {                     // 5
    CHECK_STATUS(sys.create_gate(kif::kSelSelf, 6, 2, 1, 1), Error::kNone);
    CHECK_STATUS(sys.revoke(6), Error::kNone);
  }
  CHECK_STATUS(sys.revoke(kif::kSelSelf), Error::kNotRevocable);
  CHECK_STATUS(sys.revoke(kif::kSelMemory), Error::kNotRevocable);
  // 11: a chain of depth 10 by self-delegation, revoked at the root.
  CHECK_STATUS(sys.req_mem(100, 4096, kif::kPermRW), Error::kNone);
  for (Selector s = 100; s < 110; ++s) CHECK_STATUS(sys.delegate_to(kif::kSelSelf, s, s + 1), Error::kNone);
  CHECK_STATUS(sys.revoke(100), Error::kNone);
  for (Selector s = 100; s <= 110; ++s) CHECK_STATUS(sys.revoke(s), Error::kNoSuchCap);
  // own = false: only what was derived goes.
  CHECK_STATUS(sys.req_mem(120, 4096, kif::kPermRW), Error::kNone);
  CHECK_STATUS(sys.delegate_to(kif::kSelSelf, 120, 121), Error::kNone);
  CHECK_STATUS(sys.revoke(120, 1, false), Error::kNone);
  CHECK_STATUS(sys.revoke(121), Error::kNoSuchCap);
  CHECK_STATUS(sys.revoke(120), Error::kNone);
  // Malformed and wrong requests get errors; the kernel keeps serving.
  kif::SyscallRequest unknown{};
  unknown.opcode = static_cast<kif::Syscall>(77);
  CHECK_STATUS(raw_call(sys, std::as_bytes(std::span(&unknown, 1))), Error::kUnknownOpcode);
  const std::array<std::byte, 3> too_short{};
  CHECK_STATUS(raw_call(sys, too_short), Error::kMalformed);
  const auto revoke_without_args = static_cast<std::uint64_t>(kif::Syscall::kRevoke);
  CHECK_STATUS(raw_call(sys, std::as_bytes(std::span(&revoke_without_args, 1))), Error::kMalformed);
  CHECK_STATUS(sys.revoke(0xffffffffU, 2), Error::kInvalidArgs);
  CHECK_STATUS(sys.create_gate(kif::kSelSelf, 7, 2, 1, 1), Error::kNone);
  CHECK_STATUS(sys.derive_mem(7, 8, 0, 16, kif::kPermR), Error::kWrongType);
  CHECK_STATUS(sys.create_gate(7, 8, 2, 1, 1), Error::kWrongType);
  CHECK_STATUS(sys.activate(12345, 3), Error::kNoSuchCap);
  kif::SyscallRequest pagefault{};
  pagefault.opcode = kif::Syscall::kPagefault;
  CHECK_STATUS(raw_call(sys, std::as_bytes(std::span(&pagefault, 1))), Error::kNotSupported);
  CHECK_STATUS(sys.noop(), Error::kNone);
  return 0;
}

// Memory capabilities: allocate, derive, access through the node.
int memory(Syscalls& sys, const Args&) {
  CHECK_STATUS(sys.req_mem(20, 8192, kif::kPermRW), Error::kNone);
  CHECK_STATUS(sys.derive_mem(20, 21, 4096, 4096, kif::kPermR), Error::kNone);
  CHECK_STATUS(sys.derive_mem(21, 22, 0, 16, kif::kPermRW), Error::kNoPerm);  // more rights than the parent
  CHECK_STATUS(sys.derive_mem(20, 22, 4096, 8192, kif::kPermR), Error::kInvalidArgs);  // beyond the parent
  CHECK_STATUS(sys.req_mem(23, std::uint64_t{1} << 40, kif::kPermRW), Error::kOutOfMemory);
  MemGate whole(sys, 20, 3);
  MemGate upper(sys, 21, 4);
  CHECK(whole.error() == Error::kNone && upper.error() == Error::kNone);
  CHECK_STATUS(whole.write(4096 + 10, text("derived")), Status::kOk);
  std::array<std::byte, 7> back{};
  CHECK_STATUS(upper.read(10, back), Status::kOk);
  CHECK(as_text(back) == "derived");
  CHECK_STATUS(upper.write(0, text("x")), Status::kPermissionDenied);
  CHECK_STATUS(upper.read(4096 - 2, back), Status::kOutOfBounds);
  // The VPE's own memory at selector 1.
  MemGate own(sys, kif::kSelMemory, 5);
  CHECK_STATUS(own.write(64, text("local")), Status::kOk);
  CHECK(as_text(sys.dtu().local_memory().subspan(64, 5)) == "local");
  // Revoking the parent takes the derived capability and its endpoint along.
  CHECK_STATUS(sys.revoke(20), Error::kNone);
  CHECK_STATUS(sys.revoke(21), Error::kNoSuchCap);
  CHECK_STATUS(upper.read(10, back), Status::kNotConfigured);
  return 0;
}

// A tree with many children, revoked at the root.
int wide_tree(Syscalls& sys, const Args& a) {
  const auto children = static_cast<Selector>(std::stoul(a.at(0)));
  CHECK_STATUS(sys.req_mem(1000, 4096, kif::kPermRW), Error::kNone);
  for (Selector i = 0; i < children; ++i) {
    CHECK_STATUS(sys.derive_mem(1000, 1001 + i, i % 4096, 1, kif::kPermR), Error::kNone);
  }
  CHECK_STATUS(sys.revoke(1000), Error::kNone);
  for (Selector i = 0; i < children; i += 97) CHECK_STATUS(sys.revoke(1001 + i), Error::kNoSuchCap);
  CHECK_STATUS(sys.revoke(1000 + children), Error::kNoSuchCap);
  return 0;
}

// seL4 tests 6-8 and 10 between two VPEs, A and B.
int exchange_a(Syscalls& sys, const Args&) {
  Mailbox box(sys);
  CHECK_STATUS(sys.req_mem(20, 4096, kif::kPermRW), Error::kNone);
  CHECK_STATUS(sys.delegate_to(kPeerVpe, 20, 30), Error::kNone);  // 6
  CHECK_STATUS(sys.delegate_to(kPeerVpe, 20, 30), Error::kSelectorInUse);
  box.post(1);
  box.await(2);
  MemGate mine(sys, 20, 6);
  std::array<std::byte, 6> back{};
  CHECK_STATUS(mine.read(0, back), Status::kOk);
  CHECK(as_text(back) == "from B");
  CHECK_STATUS(sys.revoke(20), Error::kNone);  // 7: cascades into B
  box.post(3);
  box.await(4);
  for (Selector i = 0; i < 3; ++i) {  // 8
    CHECK_STATUS(sys.req_mem(21 + i, 4096, kif::kPermRW), Error::kNone);
    CHECK_STATUS(sys.delegate_to(kPeerVpe, 21 + i, 31 + i), Error::kNone);
    CHECK_STATUS(sys.revoke(21 + i), Error::kNone);
  }
  box.post(5);
  box.await(6);
  CHECK_STATUS(sys.obtain_from(kPeerVpe, 60, 50), Error::kNone);  // 10
  MemGate obtained(sys, 60, 7);
  std::array<std::byte, 10> theirs{};
  CHECK_STATUS(obtained.read(0, theirs), Status::kOk);
  CHECK(as_text(theirs) == "B's memory");
  CHECK_STATUS(sys.obtain_from(kPeerVpe, 61, 51), Error::kNoSuchCap);
  box.post(7);
  return 0;
}

int exchange_b(Syscalls& sys, const Args&) {
  Mailbox box(sys);
  box.await(1);
  MemGate delegated(sys, 30, 6);
  CHECK(delegated.error() == Error::kNone);
  CHECK_STATUS(delegated.write(0, text("from B")), Status::kOk);
  box.post(2);
  box.await(3);
  CHECK_STATUS(delegated.write(0, text("again")), Status::kNotConfigured);  // its endpoint went with the cap
  CHECK_STATUS(sys.revoke(30), Error::kNoSuchCap);
  box.post(4);
  box.await(5);
  for (Selector s = 31; s < 34; ++s) CHECK_STATUS(sys.revoke(s), Error::kNoSuchCap);
  CHECK_STATUS(sys.req_mem(50, 4096, kif::kPermRW), Error::kNone);
  MemGate mine(sys, 50, 7);
  CHECK_STATUS(mine.write(0, text("B's memory")), Status::kOk);
  box.post(6);
  box.await(7);
  return 0;
}

// A holds capabilities obtained from B; B is killed by the test; A's copies go.
int victim_holder(Syscalls& sys, const Args&) {
  Mailbox box(sys);
  box.await(1);
  CHECK_STATUS(sys.obtain_from(kPeerVpe, 60, 50, 2), Error::kNone);
  CHECK_STATUS(sys.req_mem(70, 4096, kif::kPermRW), Error::kNone);
  CHECK_STATUS(sys.delegate_to(kPeerVpe, 70, 80), Error::kNone);
  box.post(2);  // now the test kills B
  CHECK_STATUS(eventually([&] { return sys.activate(60, 6); }, Error::kNone), Error::kNoSuchCap);
  CHECK_STATUS(sys.activate(61, 6), Error::kNoSuchCap);
  CHECK_STATUS(sys.revoke(70, 1, false), Error::kNone);  // what B held of ours is gone; ours stays
  CHECK_STATUS(sys.revoke(70), Error::kNone);
  return 0;
}

int doomed(Syscalls& sys, const Args&) {
  Mailbox box(sys);
  CHECK_STATUS(sys.req_mem(50, 4096, kif::kPermRW), Error::kNone);
  CHECK_STATUS(sys.req_mem(51, 4096, kif::kPermRW), Error::kNone);
  box.post(1);
  box.await(2);
  for (;;) std::this_thread::sleep_for(1s);
}

// Services and sessions: a server hands out memory and takes delegations.
constexpr EpId kServiceEp = 3;

int server(Syscalls& sys, const Args& a) {
  const int requests = std::stoi(a.at(0));
  Selector next_free = 200;
  std::map<std::uint64_t, Selector> delegated;
  std::vector<std::uint64_t> closed;
  Server srv(sys, "storage", kServiceEp, 20, 21,
             {.open =
                  [](std::uint64_t arg, std::uint64_t& ident) {
                    ident = 1000 + arg;
                    return Error::kNone;
                  },
              .obtain =
                  [&](std::uint64_t ident, std::uint64_t count, std::uint64_t, Selector& first) {
                    first = next_free;
                    for (std::uint64_t i = 0; i < count; ++i) {
                      if (auto e = sys.req_mem(next_free, 4096, kif::kPermRW); e != Error::kNone) return e;
                      ++next_free;
                    }
                    return ident >= 1000 ? Error::kNone : Error::kInvalidArgs;
                  },
              .delegate =
                  [&](std::uint64_t ident, std::uint64_t count, std::uint64_t, Selector& first) {
                    first = next_free;
                    delegated[ident] = next_free;
                    next_free += static_cast<Selector>(count);
                    return Error::kNone;
                  },
              .close = [&](std::uint64_t ident) { closed.push_back(ident); }});
  CHECK_STATUS(srv.error(), Error::kNone);
  CHECK_STATUS(sys.create_srv(22, 20, "storage"), Error::kExists);
  CHECK_STATUS(sys.create_sess_at(23, 21, 77), Error::kNone);
  for (int i = 0; i < requests - 1; ++i) CHECK_STATUS(srv.serve_one(30s), Status::kOk);
  // The client delegated a memory capability: read what it wrote there. The
  // client waits in its last request meanwhile; had it exited, what it
  // delegated would be revoked with it.
  CHECK(delegated.size() == 1);
  MemGate got(sys, delegated.begin()->second, 5);
  CHECK_STATUS(got.error(), Error::kNone);
  std::array<std::byte, 9> back{};
  CHECK_STATUS(got.read(0, back), Status::kOk);
  CHECK(as_text(back) == "delegated");
  // The client's last request, then its session closes when it exits, then
  // the kernel tells the last server standing to shut down.
  Status st = Status::kOk;
  while (st == Status::kOk) st = srv.serve_one(30s);
  CHECK_STATUS(st, Status::kTerminated);
  CHECK(closed == std::vector<std::uint64_t>{1005});
  return 0;
}

int client(Syscalls& sys, const Args&) {
  CHECK_STATUS(sys.create_sess(10, "no-such-service"), Error::kNoSuchService);
  CHECK_STATUS(eventually([&] { return sys.create_sess(10, "storage", 5); }, Error::kNoSuchService),
               Error::kNone);
  CHECK_STATUS(sys.create_sess(10, "storage", 5), Error::kSelectorInUse);
  CHECK_STATUS(sys.obtain(10, 40, 2), Error::kNone);
  MemGate obtained(sys, 41, 3);
  CHECK(obtained.error() == Error::kNone);
  CHECK_STATUS(obtained.write(100, text("obtained")), Status::kOk);
  CHECK_STATUS(sys.obtain(10, 40, 1), Error::kSelectorInUse);
  CHECK_STATUS(sys.obtain(11, 50, 1), Error::kNoSuchCap);
  CHECK_STATUS(sys.req_mem(60, 4096, kif::kPermRW), Error::kNone);
  MemGate mine(sys, 60, 4);
  CHECK_STATUS(mine.write(0, text("delegated")), Status::kOk);
  CHECK_STATUS(sys.delegate(10, 60, 1), Error::kNone);
  CHECK_STATUS(sys.obtain(10, 45, 1), Error::kNone);  // the server checks our delegation meanwhile
  return 0;
}

// CREATEVPE and VPECTRL: a parent creates this program as a child, gives it
// memory before starting it, and waits for its exit code.
std::string self_path() {
  std::array<char, 512> buffer{};
  const auto n = ::readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
  return {buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0};
}

int parent(Syscalls& sys, const Args&) {
  PeId child_pe = 0;
  CHECK_STATUS(sys.create_vpe(20, self_path() + " child", &child_pe), Error::kNone);
  CHECK_STATUS(sys.create_vpe(20, self_path() + " child"), Error::kSelectorInUse);
  CHECK_STATUS(sys.create_vpe(21, "/no/such/program"), Error::kOutOfMemory);
  CHECK_STATUS(sys.req_mem(30, 4096, kif::kPermRW), Error::kNone);
  MemGate mine(sys, 30, 3);
  CHECK_STATUS(mine.write(0, text("from your parent")), Status::kOk);
  CHECK_STATUS(sys.delegate_to(20, 30, 40), Error::kNone);  // before it runs
  int code = -1;
  CHECK_STATUS(sys.vpe_start(20), Error::kNone);
  CHECK_STATUS(sys.vpe_start(20), Error::kInvalidArgs);  // once
  CHECK_STATUS(sys.vpe_wait(20, code), Error::kNone);
  CHECK(code == 42);
  CHECK_STATUS(sys.vpe_wait(20, code), Error::kNone);  // again: it is gone, same answer
  CHECK(code == 42);
  CHECK_STATUS(sys.revoke(30, 1, false), Error::kNone);  // what the child held is gone already
  CHECK(child_pe != sys.dtu().pe());
  return 0;
}

int child(Syscalls& sys, const Args&) {
  MemGate given(sys, 40, 3);
  CHECK_STATUS(given.error(), Error::kNone);
  std::array<std::byte, 16> back{};
  CHECK_STATUS(given.read(0, back), Status::kOk);
  CHECK(as_text(back) == "from your parent");
  CHECK_STATUS(sys.exit(42), Error::kNone);
  return 42;
}

// ---- a VPE that ends before the kernel set it up, and one that waits for it ----

// Exits with code ARG at once, without ever touching its DTU (main runs it).
int exit_now(const Args& a) { return std::stoi(a.at(0)); }

// Waits for the VPE granted at selector 10 and checks its exit code is ARG.
int exit_waiter(Syscalls& sys, const Args& a) {
  CHECK_STATUS(sys.noop(), Error::kNone);
  int code = -1;
  CHECK_STATUS(sys.vpe_wait(kPeerVpe, code), Error::kNone);
  CHECK(code == std::stoi(a.at(0)));
  CHECK_STATUS(sys.req_mem(20, 4096, kif::kPermRW), Error::kNone);  // the kernel works on
  return 0;
}

// ---- REQMEM hands out zeroed memory ----
constexpr std::uint64_t kDirtyBytes = 65536 + 100;  // ends in the middle of a page

// REQMEM through the raw call: its answer's first value is the region's offset.
std::uint64_t req_mem_at(Syscalls& sys, Selector dst, std::uint64_t size) {
  kif::SyscallRequest r{};
  r.opcode = kif::Syscall::kReqMem;
  r.args[0] = dst;
  r.args[1] = size;
  r.args[2] = kif::kPermRW;
  kif::SyscallReply reply{};
  CHECK_STATUS(sys.call(r, reply), Error::kNone);
  return reply.values[0];
}

// Fills a region with 0xab, frees it, tells the reader where it was.
int dirty_writer(Syscalls& sys, const Args&) {
  Mailbox box(sys);
  const auto offset = req_mem_at(sys, 20, kDirtyBytes);
  MemGate mem(sys, 20, 3);
  CHECK_STATUS(mem.error(), Error::kNone);
  const std::vector<std::byte> secret(kDirtyBytes, std::byte{0xab});
  CHECK_STATUS(mem.write(0, secret), Status::kOk);
  CHECK_STATUS(sys.revoke(20), Error::kNone);
  box.post(offset);
  box.await(1);
  return 0;
}

// Gets the same region (the allocator hands out the first fit) and reads zeros.
int zero_reader(Syscalls& sys, const Args&) {
  Mailbox box(sys);
  const auto where = box.take();
  CHECK(req_mem_at(sys, 20, kDirtyBytes) == where);
  MemGate mem(sys, 20, 3);
  CHECK_STATUS(mem.error(), Error::kNone);
  std::vector<std::byte> back(kDirtyBytes, std::byte{1});
  CHECK_STATUS(mem.read(0, back), Status::kOk);
  CHECK(std::all_of(back.begin(), back.end(), [](std::byte b) { return b == std::byte{0}; }));
  box.post(1);
  return 0;
}

// ---- a server that does not take its calls for a while (or ever) ----
constexpr EpId kLazyEp = 3;
constexpr Selector kLazySessions = 100;

// Registers "lazy" with a receive buffer of two slots, hands COUNT sessions
// to the closer, and reads nothing until the closer, which revokes them
// (COUNT CLOSEs: most must wait in the kernel), says it was served
// meanwhile. "late": then the CLOSEs must arrive all and in order, and the
// closer's OPEN behind them is answered; "never": it exits instead.
int lazy_server(Syscalls& sys, const Args& a) {
  const auto count = static_cast<Selector>(std::stoul(a.at(0)));
  const bool never = a.at(1) == "never";
  Mailbox box(sys);
  CHECK_STATUS(sys.attach_rb(kLazyEp, 8, 7), Error::kNone);
  CHECK_STATUS(sys.create_gate(kif::kSelSelf, 20, kLazyEp, kLazyEp, 32), Error::kNone);
  CHECK_STATUS(sys.create_srv(21, 20, "lazy"), Error::kNone);
  for (Selector i = 0; i < count; ++i) {
    CHECK_STATUS(sys.create_sess_at(kLazySessions + i, 21, i + 1), Error::kNone);
    CHECK_STATUS(sys.delegate_to(kPeerVpe, kLazySessions + i, kLazySessions + i), Error::kNone);
  }
  box.post(1);
  box.await(2);
  if (never) return 0;
  const auto next = [&](kif::ServiceRequest& r) {
    ReceivedMessage m;
    CHECK_STATUS(sys.dtu().receive(kLazyEp, m, 30s), Status::kOk);
    CHECK(m.payload.size() == sizeof(r));
    std::memcpy(&r, m.payload.data(), sizeof(r));
    kif::ServiceReply answer{};
    answer.ident = 1000;
    CHECK_STATUS(sys.dtu().reply(m, std::as_bytes(std::span(&answer, 1))), Status::kOk);
  };
  kif::ServiceRequest r{};
  for (Selector i = 0; i < count; ++i) {
    next(r);
    CHECK(r.op == kif::ServiceOp::kClose && r.ident == i + 1);
  }
  next(r);
  CHECK(r.op == kif::ServiceOp::kOpen && r.arg == 5);
  while (r.op != kif::ServiceOp::kShutdown) {
    next(r);  // the session's CLOSE when the closer exits, then SHUTDOWN
  }
  return 0;
}

int closer(Syscalls& sys, const Args& a) {
  const auto count = static_cast<std::uint32_t>(std::stoul(a.at(0)));
  const bool never = a.at(1) == "never";
  Mailbox box(sys);
  box.await(1);
  CHECK_STATUS(sys.revoke(kLazySessions, count), Error::kNone);
  for (Selector s = 0; s < 100; ++s) {  // the server reads nothing meanwhile: we are served anyway
    CHECK_STATUS(sys.noop(), Error::kNone);
    CHECK_STATUS(sys.req_mem(20, 4096, kif::kPermRW), Error::kNone);
    CHECK_STATUS(sys.revoke(20), Error::kNone);
  }
  box.post(2);
  const Error opened = sys.create_sess(30, "lazy", 5);
  if (!never) {
    CHECK_STATUS(opened, Error::kNone);
  } else {  // queued behind the CLOSEs when the server left, or after it was gone
    CHECK(opened == Error::kServiceFailed || opened == Error::kNoSuchService);
  }
  return 0;
}

// ---- across kernels (and nodes): the "echo" service hands out send gates ----
constexpr EpId kPingEp = 6;       // the server receives pings here
constexpr EpId kHelloSendEp = 7;  // the server greets a client through its delegated gate
constexpr std::uint64_t kHelloLabel = 77;

int gate_server(Syscalls& sys, const Args& a) {
  const std::string name = a.empty() ? "echo" : a[0];
  CHECK_STATUS(sys.attach_rb(kPingEp, 12, 8), Error::kNone);
  Selector next_free = 200;
  std::vector<Selector> greet;  // delegated gates to greet through, once the kernel made them
  Server srv(sys, name, kServiceEp, 20, 21,
             {.open =
                  [](std::uint64_t arg, std::uint64_t& ident) {
                    ident = 500 + arg;
                    return Error::kNone;
                  },
              .obtain =
                  [&](std::uint64_t ident, std::uint64_t count, std::uint64_t, Selector& first) {
                    first = next_free;
                    for (std::uint64_t i = 0; i < count; ++i) {
                      if (auto e = sys.create_gate(kif::kSelSelf, next_free++, kPingEp, ident, 2);
                          e != Error::kNone)
                        return e;
                    }
                    return Error::kNone;
                  },
              .delegate =
                  [&](std::uint64_t, std::uint64_t count, std::uint64_t, Selector& first) {
                    first = next_free;
                    greet.push_back(next_free);
                    next_free += static_cast<Selector>(count);
                    return Error::kNone;
                  },
              .close = [](std::uint64_t) {}});
  CHECK_STATUS(srv.error(), Error::kNone);
  for (;;) {
    const auto st = srv.serve_one(1ms);
    if (st == Status::kTerminated) return 0;
    CHECK(st == Status::kOk || st == Status::kTimeout);
    ReceivedMessage m;
    while (sys.dtu().fetch(kPingEp, m) == Status::kOk) {
      const std::string answer = "pong:" + as_text(m.payload);
      CHECK_STATUS(sys.dtu().reply(m, text(answer.c_str())), Status::kOk);
    }
    for (auto it = greet.begin(); it != greet.end();) {
      if (sys.activate(*it, kHelloSendEp, kNoReplyEp, 64) != Error::kNone) {
        ++it;  // the kernel has not created it yet
        continue;
      }
      CHECK_STATUS(sys.dtu().send(kHelloSendEp, text("hello"), 0, SendMode::kWait), Status::kOk);
      it = greet.erase(it);
    }
  }
}

// Session, OBTAIN (a gate to the server: PING/PONG), DELEGATE (a gate to us:
// the server says hello), REVOKE (the obtained gate stops working).
int gate_client(Syscalls& sys, const Args& a) {
  const std::string name = a.empty() ? "echo" : a[0];
  constexpr EpId kReplyEp = 3, kPingSendEp = 4, kHelloEp = 5;
  CHECK_STATUS(eventually([&] { return patiently([&] { return sys.create_sess(10, name, 5); }); },
                          Error::kNoSuchService),
               Error::kNone);
  CHECK_STATUS(patiently([&] { return sys.obtain(10, 40, 1); }), Error::kNone);
  CHECK_STATUS(sys.attach_rb(kReplyEp, 10, 8), Error::kNone);
  CHECK_STATUS(sys.activate(40, kPingSendEp, kReplyEp, 64), Error::kNone);
  for (int i = 0; i < 3; ++i) {
    const std::string ping = fmt::format("ping{}", i);
    CHECK_STATUS(sys.dtu().send(kPingSendEp, text(ping.c_str()), static_cast<std::uint64_t>(i)), Status::kOk);
    ReceivedMessage r;
    CHECK_STATUS(sys.dtu().receive(kReplyEp, r), Status::kOk);
    CHECK(as_text(r.payload) == "pong:" + ping);
    CHECK(r.header.label == static_cast<std::uint64_t>(i));
    sys.dtu().ack(r);
  }
  CHECK_STATUS(sys.attach_rb(kHelloEp, 10, 8), Error::kNone);
  CHECK_STATUS(sys.create_gate(kif::kSelSelf, 50, kHelloEp, kHelloLabel, 1), Error::kNone);
  CHECK_STATUS(patiently([&] { return sys.delegate(10, 50, 1); }), Error::kNone);
  ReceivedMessage hello;
  CHECK_STATUS(sys.dtu().receive(kHelloEp, hello), Status::kOk);
  CHECK(as_text(hello.payload) == "hello" && hello.header.label == kHelloLabel);
  sys.dtu().ack(hello);
  CHECK_STATUS(sys.revoke(40), Error::kNone);
  CHECK_STATUS(sys.activate(40, kPingSendEp, kReplyEp, 64), Error::kNoSuchCap);
  CHECK(sys.dtu().send(kPingSendEp, text("late"), 9) != Status::kOk);
  return 0;
}

// ---- a node killed during a spanning revocation ----
constexpr EpId kAlarmEp = 6;
constexpr std::uint64_t kObtainAlarmGate = 1;  // OBTAIN's argument: a gate to the holder's alarm
constexpr Selector kChainRoot = 100;
constexpr unsigned kChainDepth = 200;  // alternating between the two kernels

// Keeps what it is delegated, hands out its latest delegation (the chain) or
// a gate to its alarm; on the alarm it kills its own node (and so itself).
int doomed_holder(Syscalls& sys, const Args& a) {
  CHECK_STATUS(sys.attach_rb(kAlarmEp, 10, 7), Error::kNone);
  Selector next_free = 200;
  Selector last = 0;
  Server srv(sys, a.at(0), kServiceEp, 20, 21,
             {.open =
                  [](std::uint64_t, std::uint64_t& ident) {
                    ident = 1;
                    return Error::kNone;
                  },
              .obtain =
                  [&](std::uint64_t, std::uint64_t, std::uint64_t what, Selector& first) {
                    if (what != kObtainAlarmGate) {
                      first = last;
                      return Error::kNone;
                    }
                    first = next_free++;
                    return sys.create_gate(kif::kSelSelf, first, kAlarmEp, 0, 1);
                  },
              .delegate =
                  [&](std::uint64_t, std::uint64_t, std::uint64_t, Selector& first) {
                    first = last = next_free++;
                    return Error::kNone;
                  },
              .close = [](std::uint64_t) {}});
  CHECK_STATUS(srv.error(), Error::kNone);
  for (;;) {
    const auto st = srv.serve_one(1ms);
    CHECK(st == Status::kOk || st == Status::kTimeout);
    ReceivedMessage m;
    if (sys.dtu().fetch(kAlarmEp, m) != Status::kOk) continue;
    if (a.size() > 1 && a[1] == "exit") return 0;  // an exit instead: the kernels revoke what we held
    std::this_thread::sleep_for(2ms);              // the revocation is under way by now
    ::kill(::getppid(), SIGKILL);                  // the node; its kernel and this PE die with it
    for (;;) ::pause();
  }
}

// Builds a chain across the two kernels, raises the holder's alarm and
// revokes the chain while the holder's node dies. Defined results: the
// revoke completes, the session to the dead kernel's service is gone, the
// own kernel works on.
int spanning_revoker(Syscalls& sys, const Args& a) {
  constexpr Selector kSession = 10, kAlarmGate = 11;
  constexpr EpId kAlarmSendEp = 4;
  CHECK_STATUS(eventually([&] { return sys.create_sess(kSession, a.at(0)); }, Error::kNoSuchService),
               Error::kNone);
  CHECK_STATUS(sys.obtain(kSession, kAlarmGate, 1, kObtainAlarmGate), Error::kNone);
  CHECK_STATUS(sys.activate(kAlarmGate, kAlarmSendEp, kNoReplyEp, 64), Error::kNone);
  CHECK_STATUS(sys.req_mem(kChainRoot, 4096, kif::kPermRW), Error::kNone);
  for (Selector s = kChainRoot; s < kChainRoot + kChainDepth / 2; ++s) {
    CHECK_STATUS(sys.delegate(kSession, s, 1), Error::kNone);
    CHECK_STATUS(sys.obtain(kSession, s + 1, 1), Error::kNone);
  }
  CHECK_STATUS(sys.dtu().send(kAlarmSendEp, text("now")), Status::kOk);
  if (a.size() > 1 && a[1] == "exit") return 0;  // both ends exit: the kernels revoke the chain from both
  CHECK_STATUS(sys.revoke(kChainRoot, 1, false), Error::kNone);      // done, or ended with kernel 1
  CHECK_STATUS(sys.activate(kChainRoot + 1, 5), Error::kNoSuchCap);  // the chain is gone
  // Under load the revocation may finish before the node dies; then calls to
  // the dying kernel fail (kServiceFailed) until ours declares it gone and
  // forgets its service.
  CHECK_STATUS(eventually([&] { return sys.create_sess(12, a.at(0)); }, Error::kServiceFailed),
               Error::kNoSuchService);
  CHECK_STATUS(sys.obtain(kSession, 300, 1), Error::kNoSuchCap);     // the session went with it
  CHECK_STATUS(sys.req_mem(301, 4096, kif::kPermRW), Error::kNone);  // our kernel carries on
  CHECK_STATUS(sys.revoke(kChainRoot), Error::kNone);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: kernel_test_vpe ROLE [ARGS...]\n");
    return 64;
  }
  std::string role = argv[1];
  Args args(argv + 2, argv + argc);
  // "later MS ROLE ARGS...": ROLE after MS milliseconds (lets a test attach
  // `vdtu trace` before the traffic starts).
  if (role == "later" && args.size() >= 2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(args[0])));
    role = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (role == "exit-now") return exit_now(args);
  const std::map<std::string, std::function<int(Syscalls&, const Args&)>> roles{
      {"basics", basics},
      {"memory", memory},
      {"wide-tree", wide_tree},
      {"exchange-a", exchange_a},
      {"exchange-b", exchange_b},
      {"victim-holder", victim_holder},
      {"doomed", doomed},
      {"server", server},
      {"client", client},
      {"parent", parent},
      {"child", child},
      {"gate-server", gate_server},
      {"gate-client", gate_client},
      {"doomed-holder", doomed_holder},
      {"spanning-revoker", spanning_revoker},
      {"exit-waiter", exit_waiter},
      {"dirty-writer", dirty_writer},
      {"zero-reader", zero_reader},
      {"lazy-server", lazy_server},
      {"closer", closer},
  };
  auto it = roles.find(role);
  if (it == roles.end()) {
    fmt::print(stderr, "kernel_test_vpe: unknown role {}\n", role);
    return 64;
  }
  try {
    auto dtu = Dtu::from_environment();
    Syscalls sys(*dtu);
    return it->second(sys, args);
  } catch (const apps::CheckFailed& f) {
    return 10 + f.line % 100;
  } catch (const std::exception& e) {
    fmt::print(stderr, "kernel_test_vpe {}: {}\n", role, e.what());
    return 2;
  }
}
