// A VPE program for the vDTU integration tests. The role comes from argv; the
// exit code says whether every check passed (0) or which one failed.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "protocol/control_messages.hpp"
#include "protocol/doorbell.hpp"
#include "protocol/fd_socket.hpp"
#include "protocol/pe_page.hpp"
#include "vdtu/channel.hpp"
#include "vdtu/dtu.hpp"

using namespace vdtu;
using namespace std::chrono_literals;

namespace {

using Args = std::vector<std::string>;

PeId pe_arg(const Args& a, std::size_t i) { return static_cast<PeId>(std::stoul(a.at(i))); }
std::span<const std::byte> text(const char* s) { return std::as_bytes(std::span(s, std::strlen(s))); }
std::string as_text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

constexpr std::uint64_t kLabel = 0x1234;
constexpr std::uint64_t kProbeLabel = 0x7777;  // "I have seen my credits run out"

// ---- messaging: a kernel binds A -> B with credits and a reply endpoint ----

// The receiver's and the sender's halves apart, so that two nodes' kernels
// can each configure their own PEs.
int configure_receiver(Dtu& dtu, const Args& a) {
  CHECK(dtu.privileged());
  CHECK_STATUS(dtu.config_receive(pe_arg(a, 0), 0, {12, 9}), Status::kOk);
  return 0;
}

int configure_sender(Dtu& dtu, const Args& a) {
  const PeId sender = pe_arg(a, 0);
  const PeId receiver = pe_arg(a, 1);
  CHECK(dtu.privileged());
  CHECK_STATUS(dtu.config_receive(sender, 1, {11, 9}), Status::kOk);
  CHECK_STATUS(dtu.config_send(sender, 2, {receiver, 0, kLabel, 2, 256, 1}), Status::kOk);
  CHECK_STATUS(dtu.config_send(sender, 3, {receiver, 0, kProbeLabel, kCreditsUnlimited, 64, kNoReplyEp}),
               Status::kOk);
  return 0;
}

// Sends `count` messages on the unlimited probe endpoint and exits at once:
// what it sent must still arrive after its endpoints are gone.
int burst_sender(Dtu& dtu, const Args& a) {
  const int count = std::stoi(a.at(0));
  CHECK_STATUS(dtu.wait_for_endpoint(3, EndpointKind::kSend), Status::kOk);
  for (int i = 0; i < count; ++i) {
    CHECK_STATUS(dtu.send(3, std::as_bytes(std::span(&i, 1)), 0, SendMode::kWait), Status::kOk);
  }
  return 0;
}

int burst_receiver(Dtu& dtu, const Args& a) {
  const int count = std::stoi(a.at(0));
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kReceive), Status::kOk);
  for (int i = 0; i < count; ++i) {
    ReceivedMessage m;
    CHECK_STATUS(dtu.receive(0, m), Status::kOk);
    int got = -1;
    CHECK(m.payload.size() == sizeof(got));
    std::memcpy(&got, m.payload.data(), sizeof(got));
    CHECK(got == i && m.header.label == kProbeLabel);
    CHECK_STATUS(dtu.ack(m), Status::kOk);
  }
  return 0;
}

int configure_messaging(Dtu& dtu, const Args& a) {
  if (const int rc = configure_receiver(dtu, {a.at(1)}); rc != 0) return rc;
  return configure_sender(dtu, a);
}

int sender(Dtu& dtu, const Args& a) {
  const PeId receiver = pe_arg(a, 0);
  for (EpId ep : {2, 3}) CHECK_STATUS(dtu.wait_for_endpoint(ep, EndpointKind::kSend), Status::kOk);
  CHECK_STATUS(dtu.wait_for_endpoint(1, EndpointKind::kReceive), Status::kOk);
  CHECK(dtu.credits(2) == 2);
  CHECK_STATUS(dtu.send(2, text("m0"), 100), Status::kOk);
  CHECK_STATUS(dtu.send(2, text("m1"), 101), Status::kOk);
  // The receiver replies only after our probe, so the credits are surely gone.
  CHECK(dtu.credits(2) == 0);
  CHECK_STATUS(dtu.send(2, text("m2"), 102), Status::kNoCredits);  // nothing dropped: refused
  std::vector<std::byte> big(257);
  CHECK_STATUS(dtu.send(2, big, 0), Status::kTooLarge);
  CHECK_STATUS(dtu.send(3, text("probe"), 0), Status::kOk);
  for (std::uint64_t expected : {100, 101}) {
    ReceivedMessage r;
    CHECK_STATUS(dtu.receive(1, r), Status::kOk);
    CHECK(r.header.flags == (kFlagReply | kFlagGrantCredits));
    CHECK(r.header.label == expected);
    CHECK(r.header.sender_core_id == receiver && r.header.sender_ep_id == 0);
    CHECK(as_text(r.payload) == fmt::format("re:m{}", expected - 100));
    CHECK_STATUS(dtu.ack(r), Status::kOk);
  }
  CHECK(dtu.credits(2) == 2);
  CHECK_STATUS(dtu.send(2, text("m2"), 102, SendMode::kWait), Status::kOk);
  ReceivedMessage r;
  CHECK_STATUS(dtu.receive(1, r), Status::kOk);
  CHECK(r.header.label == 102);
  CHECK_STATUS(dtu.ack(r), Status::kOk);
  CHECK(dtu.stats().forged_replies_dropped == 0);
  return 0;
}

int receiver(Dtu& dtu, const Args& a) {
  const PeId sender_pe = pe_arg(a, 0);
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kReceive), Status::kOk);
  // m0, m1 and the probe arrive on two channels, in either order. Replies wait
  // for the probe, so the sender's "no credits" check is deterministic.
  std::vector<ReceivedMessage> requests;
  bool probed = false;
  auto take = [&](std::size_t wanted_requests) {
    while (requests.size() < wanted_requests || !probed) {
      ReceivedMessage m;
      CHECK_STATUS(dtu.receive(0, m), Status::kOk);
      CHECK(m.header.sender_core_id == sender_pe && m.header.sender_vpe_id == sender_pe);
      if (m.header.label == kProbeLabel) {
        CHECK(!probed && m.header.sender_ep_id == 3 && m.header.flags == 0);
        CHECK_STATUS(dtu.reply(m, text("no")), Status::kReplyFailed);  // not reply-enabled
        CHECK_STATUS(dtu.ack(m), Status::kOk);
        probed = true;
        continue;
      }
      CHECK(m.header.label == kLabel && m.header.sender_ep_id == 2);
      CHECK(m.header.flags == kFlagReplyEnabled && m.header.reply_ep_id == 1);
      CHECK(as_text(m.payload) == fmt::format("m{}", requests.size()));
      requests.push_back(m);
    }
  };
  take(2);
  for (const auto& r : requests) {
    const std::string answer = fmt::format("re:{}", as_text(r.payload));
    CHECK_STATUS(dtu.reply(r, text(answer.c_str())), Status::kOk);
    CHECK_STATUS(dtu.reply(r, text("again")), Status::kReplyFailed);
    CHECK_STATUS(dtu.ack(r), Status::kInvalidArgument);  // a reply acks the message
  }
  take(3);
  CHECK_STATUS(dtu.reply(requests[2], text("re:m2")), Status::kOk);
  return 0;
}

// ---- a victim, an honest sender and a hostile PE ------------------------------

// Victim PE 0 receives on EP 0 from the honest PE 1 (reply endpoint 1) and
// from the hostile PE 2, which scribbles over the victim's doorbell page and
// its own channel meanwhile (apps/hostile_pe.cpp).
int configure_hostile_scene(Dtu& dtu, const Args& a) {
  const PeId victim = pe_arg(a, 0);
  const PeId honest = pe_arg(a, 1);
  const PeId hostile = pe_arg(a, 2);
  CHECK_STATUS(dtu.config_receive(victim, 0, {12, 8}), Status::kOk);
  CHECK_STATUS(dtu.config_receive(honest, 1, {10, 8}), Status::kOk);
  CHECK_STATUS(dtu.config_send(honest, 2, {victim, 0, 0x600d, 1, 64, 1}), Status::kOk);
  CHECK_STATUS(dtu.config_send(hostile, 2, {victim, 0, 0xbad, 4, 64, kNoReplyEp}), Status::kOk);
  return 0;
}

// Answers `count` messages of the honest sender; whatever else arrives (the
// hostile PE's) is taken and dropped.
int steady_receiver(Dtu& dtu, const Args& a) {
  const auto count = std::stoul(a.at(0));
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kReceive), Status::kOk);
  for (std::size_t answered = 0; answered < count;) {
    ReceivedMessage m;
    CHECK_STATUS(dtu.receive(0, m, 30s), Status::kOk);
    if (m.header.label != 0x600d) {
      CHECK_STATUS(dtu.ack(m), Status::kOk);
      continue;
    }
    CHECK_STATUS(dtu.reply(m, m.payload), Status::kOk);
    ++answered;
  }
  return 0;
}

// `count` round trips to the steady receiver, each checked, `pause`
// milliseconds apart (so that they span what the hostile PE does).
int steady_sender(Dtu& dtu, const Args& a) {
  const auto count = std::stoul(a.at(0));
  const auto pause = std::chrono::milliseconds(a.size() > 1 ? std::stoul(a[1]) : 0);
  CHECK_STATUS(dtu.wait_for_endpoint(2, EndpointKind::kSend), Status::kOk);
  for (std::uint64_t round = 0; round < count; ++round) {
    CHECK_STATUS(dtu.send(2, std::as_bytes(std::span(&round, 1)), round, SendMode::kWait, 30s), Status::kOk);
    ReceivedMessage m;
    CHECK_STATUS(dtu.receive(1, m, 30s), Status::kOk);
    CHECK(m.header.label == round && m.payload.size() == sizeof(round));
    std::uint64_t echoed = 0;
    std::memcpy(&echoed, m.payload.data(), sizeof(echoed));
    CHECK(echoed == round);
    CHECK_STATUS(dtu.ack(m), Status::kOk);
    std::this_thread::sleep_for(pause);
  }
  return 0;
}

// ---- privilege ---------------------------------------------------------------

int unprivileged(Dtu& dtu, const Args&) {
  const PeId me = dtu.pe();
  CHECK(!dtu.privileged());
  CHECK_STATUS(dtu.config_receive(me, 0, {12, 9}), Status::kPermissionDenied);
  CHECK_STATUS(dtu.config_send(me, 1, {me, 0, 1, 1, 64, kNoReplyEp}), Status::kPermissionDenied);
  CHECK_STATUS(dtu.config_memory(me, 2, {kGlobalMemoryPe, 0, 4096, kMemReadWrite, kThisNode}),
               Status::kPermissionDenied);
  CHECK_STATUS(dtu.invalidate(me, 0), Status::kPermissionDenied);
  CHECK_STATUS(dtu.invalidate_all(me), Status::kPermissionDenied);
  CHECK_STATUS(dtu.terminate(me, 0), Status::kPermissionDenied);
  CHECK_STATUS(dtu.wake(me), Status::kPermissionDenied);
  CHECK_STATUS(dtu.set_vpe(me, 7), Status::kPermissionDenied);
  CHECK_STATUS(dtu.privilege(me), Status::kPermissionDenied);
  CHECK_STATUS(dtu.clear_memory(kGlobalMemoryPe, 0, 4096), Status::kPermissionDenied);
  CHECK(dtu.endpoint_kind(0) == EndpointKind::kInvalid);
  return 0;
}

// A kernel that configures after the node fell asleep: its mailbox request
// wakes the node through a kick, and every answer comes.
int configure_after_idle(Dtu& dtu, const Args&) {
  const PeId me = dtu.pe();
  CHECK(dtu.privileged());
  for (EpId ep = 0; ep < 5; ++ep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_STATUS(dtu.config_receive(me, ep, {12, 9}), Status::kOk);
    CHECK(dtu.endpoint_kind(ep) == EndpointKind::kReceive);  // our own update came before the answer
  }
  CHECK_STATUS(dtu.config_receive(me, 200, {12, 9}), Status::kInvalidArgument);
  return 0;
}

// ---- configuration rules (the seL4 prototype's config tests, in spirit) ----

int configuration_rules(Dtu& dtu, const Args& a) {
  const PeId p1 = pe_arg(a, 0);
  const PeId p2 = pe_arg(a, 1);
  const std::size_t idle_first = std::stoul(a.at(2));
  const std::size_t idle_count = std::stoul(a.at(3));
  // A send endpoint needs a receive endpoint at the target.
  CHECK_STATUS(dtu.config_send(p1, 1, {p2, 0, 1, 4, 64, kNoReplyEp}), Status::kNotConfigured);
  // Bad geometry, endpoint out of range, unknown PE.
  CHECK_STATUS(dtu.config_receive(p2, 0, {9, 9}), Status::kInvalidArgument);
  CHECK_STATUS(dtu.config_receive(p2, 0, {30, 9}), Status::kInvalidArgument);
  CHECK_STATUS(dtu.config_receive(p2, 200, {12, 9}), Status::kInvalidArgument);
  CHECK_STATUS(dtu.config_receive(999, 0, {12, 9}), Status::kInvalidArgument);
  // A PE of this node that does not run yet (the last of 128): worth a retry.
  CHECK_STATUS(dtu.config_receive(127, 0, {12, 9}), Status::kNotConfigured);
  CHECK_STATUS(dtu.config_send(p1, 1, {127, 0, 1, 4, 64, kNoReplyEp}), Status::kNotConfigured);
  CHECK_STATUS(dtu.config_receive(p2, 0, {12, 9}), Status::kOk);
  // Message larger than the receiver's slots, zero credits.
  CHECK_STATUS(dtu.config_send(p1, 1, {p2, 0, 1, 4, 512, kNoReplyEp}), Status::kTooLarge);
  CHECK_STATUS(dtu.config_send(p1, 1, {p2, 0, 1, 0, 64, kNoReplyEp}), Status::kInvalidArgument);
  // Memory windows outside the target memory.
  CHECK_STATUS(dtu.config_memory(p1, 3, {p2, (1U << 20) - 8, 16, kMemRead, kThisNode}), Status::kOutOfBounds);
  CHECK_STATUS(dtu.config_memory(p1, 3, {p2, 0, 16, 0, kThisNode}), Status::kInvalidArgument);
  // Receive-endpoint channels run out after 1024 senders: exhaustion is an error.
  std::size_t bound = 0;
  Status last = Status::kOk;
  for (std::size_t pe = idle_first; pe < idle_first + idle_count && last == Status::kOk; ++pe) {
    for (EpId ep = 0; ep < 16 && last == Status::kOk; ++ep) {
      last = dtu.config_send(static_cast<PeId>(pe), ep, {p2, 0, 1, 1, 64, kNoReplyEp});
      bound += last == Status::kOk ? 1 : 0;
    }
  }
  CHECK(bound == 1024);
  CHECK_STATUS(last, Status::kNoResources);
  // Invalidating one sender frees its channel for the next.
  CHECK_STATUS(dtu.invalidate(static_cast<PeId>(idle_first), 0), Status::kOk);
  CHECK_STATUS(dtu.config_send(p1, 1, {p2, 0, 1, 4, 64, kNoReplyEp}), Status::kOk);
  CHECK_STATUS(dtu.config_send(p1, 2, {p2, 0, 1, 4, 64, kNoReplyEp}), Status::kNoResources);
  // Invalidating the receive endpoint takes every sender with it.
  CHECK_STATUS(dtu.invalidate(p2, 0), Status::kOk);
  return 0;
}

// Never reads its control socket: the node must kill it once the socket is
// full rather than block or drop updates.
int deaf(const Args&) {
  for (;;) ::pause();
}

// Configures `target` until the node refuses because the target is gone.
int flood_config(Dtu& dtu, const Args& a) {
  const PeId target = pe_arg(a, 0);
  for (int i = 0; i < 1'000'000; ++i) {
    const Status st = dtu.config_receive(target, static_cast<EpId>(i % 8), {12, 9});
    if (st == Status::kPeerGone) return 0;  // the PE ended
    CHECK_STATUS(st, Status::kOk);
  }
  return 3;  // never killed
}

// Reconfigures endpoints 0-2 of `target` `rounds` times without pausing,
// then leaves 0 and 2 receive endpoints and 1 invalid.
int configure_many(Dtu& dtu, const Args& a) {
  const PeId target = pe_arg(a, 0);
  const int rounds = std::stoi(a.at(1));
  for (int i = 0; i < rounds; ++i) {
    CHECK_STATUS(dtu.config_receive(target, static_cast<EpId>(i % 3), {12, 9}), Status::kOk);
  }
  CHECK_STATUS(dtu.invalidate(target, 1), Status::kOk);
  return 0;
}

// Touches its DTU only after `seconds`, long after configure-many ended:
// most updates still wait in the node (its socket is full), yet the first
// look must show the kernel's last word.
int late_looker(Dtu& dtu, const Args& a) {
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(a.at(0))));
  CHECK(dtu.endpoint_kind(1) == EndpointKind::kInvalid);  // the very first look
  CHECK(dtu.endpoint_kind(0) == EndpointKind::kReceive);
  CHECK(dtu.endpoint_kind(2) == EndpointKind::kReceive);
  CHECK(dtu.stats().lost_updates == 0);
  return 0;
}

int idle(Dtu& dtu, const Args&) {
  while (dtu.wait(std::chrono::seconds(1)) != Status::kPeerGone) {
    if (getppid() == 1) return 0;
  }
  return 0;
}

// ---- no crosstalk: two senders, one receiver; two receivers ------------------

int configure_crosstalk(Dtu& dtu, const Args& a) {
  const PeId s1 = pe_arg(a, 0), s2 = pe_arg(a, 1), r1 = pe_arg(a, 2), r2 = pe_arg(a, 3);
  for (PeId r : {r1, r2}) CHECK_STATUS(dtu.config_receive(r, 0, {13, 8}), Status::kOk);
  CHECK_STATUS(dtu.config_send(s1, 0, {r1, 0, 0x51, kCreditsUnlimited, 64, kNoReplyEp}), Status::kOk);
  CHECK_STATUS(dtu.config_send(s2, 0, {r1, 0, 0x52, kCreditsUnlimited, 64, kNoReplyEp}), Status::kOk);
  CHECK_STATUS(dtu.config_send(s1, 1, {r2, 0, 0x61, kCreditsUnlimited, 64, kNoReplyEp}), Status::kOk);
  return 0;
}

int crosstalk_sender(Dtu& dtu, const Args& a) {
  const int count = std::stoi(a.at(0));
  const int eps = std::stoi(a.at(1));
  for (EpId ep = 0; ep < eps; ++ep) CHECK_STATUS(dtu.wait_for_endpoint(ep, EndpointKind::kSend), Status::kOk);
  for (int i = 0; i < count; ++i) {
    for (EpId ep = 0; ep < eps; ++ep) {
      const auto value = static_cast<std::uint32_t>(i);
      CHECK_STATUS(dtu.send(ep, std::as_bytes(std::span(&value, 1)), 0, SendMode::kWait), Status::kOk);
    }
  }
  return 0;
}

int crosstalk_receiver(Dtu& dtu, const Args& a) {
  // args: count, then label:pe pairs expected on endpoint 0
  const int count = std::stoi(a.at(0));
  std::map<std::uint64_t, PeId> expected;
  std::map<std::uint64_t, std::uint32_t> next;
  for (std::size_t i = 1; i + 1 < a.size(); i += 2)
    expected[std::stoull(a[i], nullptr, 0)] = pe_arg(a, i + 1);
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kReceive), Status::kOk);
  for (std::size_t got = 0; got < count * expected.size(); ++got) {
    ReceivedMessage m;
    CHECK_STATUS(dtu.receive(0, m), Status::kOk);
    const std::uint64_t label = m.header.label;  // packed field: copy before binding a reference
    auto it = expected.find(label);
    CHECK(it != expected.end());
    CHECK(m.header.sender_core_id == it->second);
    std::uint32_t value = 0;
    CHECK(m.payload.size() == sizeof(value));
    std::memcpy(&value, m.payload.data(), sizeof(value));
    CHECK(value == next[label]++);  // per sender: in order, none lost
    CHECK_STATUS(dtu.ack(m), Status::kOk);
  }
  ReceivedMessage extra;
  CHECK_STATUS(dtu.receive(0, extra, 50ms), Status::kTimeout);
  return 0;
}

// ---- memory endpoints ----------------------------------------------------------

int configure_memory(Dtu& dtu, const Args& a) {
  const PeId user = pe_arg(a, 0);
  const PeId owner = pe_arg(a, 1);
  CHECK_STATUS(dtu.config_memory(user, 0, {owner, 4096, 8192, kMemReadWrite, kThisNode}), Status::kOk);
  CHECK_STATUS(dtu.config_memory(user, 1, {owner, 4096, 8192, kMemRead, kThisNode}), Status::kOk);
  CHECK_STATUS(dtu.config_memory(user, 2, {kGlobalMemoryPe, 1 << 20, 1 << 20, kMemReadWrite, kThisNode}),
               Status::kOk);
  CHECK_STATUS(dtu.config_memory(user, 3, {owner, 0, 4096, kMemWrite, kThisNode}), Status::kOk);
  CHECK_STATUS(dtu.config_receive(owner, 0, {10, 8}), Status::kOk);
  CHECK_STATUS(dtu.config_send(user, 5, {owner, 0, 9, 1, 64, kNoReplyEp}), Status::kOk);
  return 0;
}

// The same endpoints on another node's memory: USER here, OWNER on node NODE
// (whose kernel runs configure-memory-owner).
int configure_remote_memory(Dtu& dtu, const Args& a) {
  const PeId user = pe_arg(a, 0);
  const PeId owner = pe_arg(a, 1);
  const auto node = static_cast<std::uint16_t>(std::stoul(a.at(2)));
  CHECK_STATUS(dtu.config_memory(user, 0, {owner, 4096, 8192, kMemReadWrite, node}), Status::kOk);
  CHECK_STATUS(dtu.config_memory(user, 1, {owner, 4096, 8192, kMemRead, node}), Status::kOk);
  CHECK_STATUS(dtu.config_memory(user, 2, {kGlobalMemoryPe, 1 << 20, 1 << 20, kMemReadWrite, node}),
               Status::kOk);
  CHECK_STATUS(dtu.config_memory(user, 3, {owner, 0, 4096, kMemWrite, node}), Status::kOk);
  CHECK_STATUS(dtu.config_memory(user, 4, {owner, 0, 4096, kMemWrite, 77}),
               Status::kInvalidArgument);  // no such node
  CHECK_STATUS(dtu.config_send(user, 5, {owner, 0, 9, 1, 64, kNoReplyEp}), Status::kOk);
  return 0;
}

int configure_memory_owner(Dtu& dtu, const Args& a) {
  CHECK_STATUS(dtu.config_receive(pe_arg(a, 0), 0, {10, 8}), Status::kOk);
  return 0;
}

// USER reads node NODE's global memory through EP 0.
int configure_remote_memory_reader(Dtu& dtu, const Args& a) {
  const auto node = static_cast<std::uint16_t>(std::stoul(a.at(1)));
  CHECK_STATUS(dtu.config_memory(pe_arg(a, 0), 0, {kGlobalMemoryPe, 0, 4096, kMemReadWrite, node}),
               Status::kOk);
  return 0;
}

// Reads until the memory's node disappears: then kPeerGone, every time.
int remote_memory_until_gone(Dtu& dtu, const Args&) {
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kMemory), Status::kOk);
  std::array<std::byte, 8> word{};
  const auto until = std::chrono::steady_clock::now() + 20s;
  Status st = Status::kOk;
  int reads = 0;
  while (st == Status::kOk && std::chrono::steady_clock::now() < until) {
    st = dtu.read(0, 0, word);
    ++reads;
  }
  CHECK(reads > 1);
  CHECK_STATUS(st, Status::kPeerGone);
  CHECK_STATUS(dtu.read(0, 0, word), Status::kPeerGone);
  return 0;
}

int memory_user(Dtu& dtu, const Args&) {
  for (EpId ep : {0, 1, 2, 3}) CHECK_STATUS(dtu.wait_for_endpoint(ep, EndpointKind::kMemory), Status::kOk);
  CHECK_STATUS(dtu.wait_for_endpoint(5, EndpointKind::kSend), Status::kOk);
  CHECK_STATUS(dtu.write(0, 100, text("hello, owner")), Status::kOk);
  std::array<std::byte, 12> back{};
  CHECK_STATUS(dtu.read(1, 100, back), Status::kOk);
  CHECK(as_text(back) == "hello, owner");
  CHECK_STATUS(dtu.write(1, 0, text("x")), Status::kPermissionDenied);
  CHECK_STATUS(dtu.read(3, 0, back), Status::kPermissionDenied);
  CHECK_STATUS(dtu.read(0, 8192 - 4, back), Status::kOutOfBounds);
  CHECK_STATUS(dtu.write(0, ~std::uint64_t{0} - 2, text("wrap")), Status::kOutOfBounds);
  CHECK_STATUS(dtu.read(4, 0, back), Status::kNotConfigured);
  // Several chunks through the global memory, read back intact.
  std::vector<std::byte> big(300'000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i * 7 + 3);
  CHECK_STATUS(dtu.write(2, 12345, big), Status::kOk);
  std::vector<std::byte> copy(big.size());
  CHECK_STATUS(dtu.read(2, 12345, copy), Status::kOk);
  CHECK(copy == big);
  CHECK_STATUS(dtu.send(5, text("check"), 0), Status::kOk);
  return 0;
}

// A kernel zeroes memory (what REQMEM hands out): global memory through a
// memory endpoint of its own, its own memory through its mapping. Partial
// pages at both ends; windows checked like a memory endpoint's.
int clear_memory(Dtu& dtu, const Args&) {
  const PeId me = dtu.pe();
  constexpr std::size_t kBytes = std::size_t{3} * 4096;
  const auto expect = [](std::span<const std::byte> got, std::size_t from, std::size_t to, std::byte other) {
    for (std::size_t i = 0; i < got.size(); ++i)
      CHECK(got[i] == (i >= from && i < to ? std::byte{0} : other));
  };
  CHECK_STATUS(dtu.config_memory(me, 0, {kGlobalMemoryPe, 4096, kBytes, kMemReadWrite, kThisNode}),
               Status::kOk);
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kMemory), Status::kOk);
  const std::vector<std::byte> pattern(kBytes, std::byte{0x5a});
  CHECK_STATUS(dtu.write(0, 0, pattern), Status::kOk);
  CHECK_STATUS(dtu.clear_memory(kGlobalMemoryPe, 4096 + 100, 5000), Status::kOk);
  std::vector<std::byte> back(kBytes);
  CHECK_STATUS(dtu.read(0, 0, back), Status::kOk);
  expect(back, 100, 5100, std::byte{0x5a});
  const auto mine = dtu.local_memory().first(kBytes);
  std::fill(mine.begin(), mine.end(), std::byte{0x77});
  CHECK_STATUS(dtu.clear_memory(me, 10, 8000), Status::kOk);
  expect(mine, 10, 8010, std::byte{0x77});
  CHECK_STATUS(dtu.clear_memory(kGlobalMemoryPe, 0, 0), Status::kInvalidArgument);
  CHECK_STATUS(dtu.clear_memory(kGlobalMemoryPe, ~std::uint64_t{0} - 5, 10), Status::kOutOfBounds);
  CHECK_STATUS(dtu.clear_memory(me, dtu.local_memory().size() - 10, 11), Status::kOutOfBounds);
  CHECK_STATUS(dtu.clear_memory(999, 0, 1), Status::kInvalidArgument);  // no such PE
  return 0;
}

int memory_owner(Dtu& dtu, const Args&) {
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kReceive), Status::kOk);
  ReceivedMessage m;
  CHECK_STATUS(dtu.receive(0, m, 20s), Status::kOk);
  const auto mem = dtu.local_memory();
  CHECK(as_text(mem.subspan(4096 + 100, 12)) == "hello, owner");
  CHECK(mem[4096 + 99] == std::byte{0});
  return 0;
}

// ---- a sender that writes its own header bytes -------------------------------

int configure_forgery(Dtu& dtu, const Args& a) {
  const PeId forger = pe_arg(a, 0);
  const PeId victim = pe_arg(a, 1);
  CHECK_STATUS(dtu.config_receive(victim, 0, {12, 9}), Status::kOk);
  CHECK_STATUS(dtu.config_send(forger, 0, {victim, 0, 0x600d, 4, 128, kNoReplyEp}), Status::kOk);
  return 0;
}

// The control socket without the DTU library, as a hostile PE sees it.
class RawControl {
 public:
  RawControl() {
    const char* fd =
        std::getenv(Dtu::kControlFdVariable);  // NOLINT(concurrency-mt-unsafe): before any thread
    CHECK(fd != nullptr);
    socket_.reset(std::atoi(fd));
    hello_ = next();
  }
  // The next message from the node; its fds land in fds().
  dtu::NodeMessage next() {
    std::size_t n = 0;
    CHECK(dtu::recv_with_fds(socket_.get(), buffer_, n, fds_, true) == dtu::RecvResult::kMessage);
    dtu::NodeMessage m{};
    std::memcpy(&m, buffer_.data(), sizeof(m));
    return m;
  }
  [[nodiscard]] int socket() const { return socket_.get(); }
  [[nodiscard]] const dtu::NodeMessage& hello() const { return hello_; }
  std::vector<UniqueFd>& fds() { return fds_; }

 private:
  UniqueFd socket_;
  std::array<std::byte, 512> buffer_{};
  std::vector<UniqueFd> fds_;
  dtu::NodeMessage hello_{};
};

// A privileged PE that writes its mailbox by hand: whatever it posts is
// copied, checked and answered in the page, never carried out unchecked.
int mailbox_garbage(const Args&) {
  RawControl control;
  CHECK(control.hello().privileged != 0);
  auto page = dtu::PePage::attach(std::move(control.fds()[6]));
  std::uint32_t id = 0;
  auto ask = [&](const dtu::ControlRequest& r) {
    ++id;
    page.post_request(r, id);
    const auto kick = dtu::kMailboxKick;
    CHECK(dtu::send_with_fds(control.socket(), std::as_bytes(std::span(&kick, 1)), {}));
    while (page.answer().id != id) page.sleep_for_answer(id, std::chrono::milliseconds(10));
    return page.answer().status;
  };
  dtu::ControlRequest bad_magic{};
  bad_magic.magic = 0x12345678;
  bad_magic.op = dtu::ControlOp::kWake;
  CHECK_STATUS(ask(bad_magic), Status::kInvalidArgument);
  dtu::ControlRequest unknown{};
  unknown.op = static_cast<dtu::ControlOp>(200);
  CHECK_STATUS(ask(unknown), Status::kInvalidArgument);
  dtu::ControlRequest far_endpoint{};
  far_endpoint.op = dtu::ControlOp::kConfigReceive;
  far_endpoint.pe = control.hello().pe;
  far_endpoint.ep = 250;
  far_endpoint.receive = {12, 9};
  CHECK_STATUS(ask(far_endpoint), Status::kInvalidArgument);
  dtu::ControlRequest launch{};
  launch.op = dtu::ControlOp::kLaunch;
  launch.command_length = 3;
  std::memcpy(launch.command, "abc", 3);  // no terminating NUL
  CHECK_STATUS(ask(launch), Status::kInvalidArgument);
  dtu::ControlRequest wake{};
  wake.op = dtu::ControlOp::kWake;
  wake.pe = control.hello().pe;
  CHECK_STATUS(ask(wake), Status::kOk);
  // Kicks with nothing new posted are not requests: no answer, no harm.
  const auto kick = dtu::kMailboxKick;
  for (int i = 0; i < 3; ++i)
    CHECK(dtu::send_with_fds(control.socket(), std::as_bytes(std::span(&kick, 1)), {}));
  CHECK_STATUS(ask(wake), Status::kOk);
  return 0;
}

// Speaks the control protocol by hand and writes raw slots, as a hostile PE can.
int forger(const Args&) {
  RawControl control;
  for (;;) {
    const dtu::NodeMessage m = control.next();
    if (m.kind != dtu::NodeMessageKind::kSendEndpoint) continue;
    auto& fds = control.fds();
    auto ch = SharedChannel::attach(std::move(fds[0]), std::move(fds[1]), {m.slot_count, m.slot_size});
    auto bell = dtu::Doorbell::attach(std::move(fds[2]), control.hello().endpoints);
    Producer raw(ch);
    MessageHeader forged{};
    forged.flags = kFlagReply | kFlagGrantCredits;
    forged.sender_core_id = 4242;
    forged.sender_ep_id = 9;
    forged.sender_vpe_id = 4242;
    forged.reply_ep_id = 3;
    forged.label = 0xbad;
    CHECK_STATUS(raw.try_send(forged, text("forged")), Status::kOk);
    bell.ring(m.send.target_ep, m.channel);
    return 0;
  }
}

// Sends the node every kind of broken control request, then a well-formed
// one: the node must answer each, keep serving, and close fds it was sent.
int control_garbage(const Args&) {
  RawControl control;
  const int socket = control.socket();
  auto answer = [&]() -> Status {
    for (;;) {
      const auto m = control.next();
      if (m.kind == dtu::NodeMessageKind::kReply) return m.status;
    }
  };
  const std::array<std::byte, 3> too_short{};
  CHECK(dtu::send_with_fds(socket, too_short, {}));
  CHECK_STATUS(answer(), Status::kInvalidArgument);
  std::vector<std::byte> too_long(sizeof(dtu::ControlRequest) + 100, std::byte{0x41});
  CHECK(dtu::send_with_fds(socket, too_long, {}));
  CHECK_STATUS(answer(), Status::kInvalidArgument);
  dtu::ControlRequest bad_magic{};
  bad_magic.magic = 0x12345678;
  bad_magic.op = dtu::ControlOp::kWake;
  CHECK(dtu::send_with_fds(socket, std::as_bytes(std::span(&bad_magic, 1)), {}));
  CHECK_STATUS(answer(), Status::kInvalidArgument);
  dtu::ControlRequest unknown{};
  unknown.op = static_cast<dtu::ControlOp>(200);
  CHECK(dtu::send_with_fds(socket, std::as_bytes(std::span(&unknown, 1)), {}));
  CHECK_STATUS(answer(), Status::kInvalidArgument);
  // fds a PE has no business sending: the node closes them and answers.
  dtu::ControlRequest wake{};
  wake.op = dtu::ControlOp::kWake;
  const std::array<int, 2> stray{0, 1};
  CHECK(dtu::send_with_fds(socket, std::as_bytes(std::span(&wake, 1)), stray));
  CHECK_STATUS(answer(), Status::kPermissionDenied);  // well-formed, but we are not privileged
  return 0;
}

int forgery_victim(Dtu& dtu, const Args& a) {
  const PeId forger_pe = pe_arg(a, 0);
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kReceive), Status::kOk);
  ReceivedMessage m;
  CHECK_STATUS(dtu.receive(0, m), Status::kOk);
  CHECK(as_text(m.payload) == "forged");
  CHECK(m.header.label == 0x600d);
  CHECK(m.header.sender_core_id == forger_pe && m.header.sender_ep_id == 0 &&
        m.header.sender_vpe_id == forger_pe);
  CHECK(m.header.flags == 0 && m.header.reply_ep_id == 0);
  CHECK_STATUS(dtu.reply(m, text("no")), Status::kReplyFailed);
  return 0;
}

// ---- crashes: an echo server, clients, kill -9 --------------------------------

int configure_echo_server(Dtu& dtu, const Args& a) {
  CHECK_STATUS(dtu.config_receive(pe_arg(a, 0), 0, {14, 8}), Status::kOk);
  return 0;
}

int configure_echo_clients(Dtu& dtu, const Args& a) {
  const PeId server = pe_arg(a, 0);
  for (std::size_t i = 1; i < a.size(); ++i) {
    const PeId client = pe_arg(a, i);
    CHECK_STATUS(dtu.config_receive(client, 1, {10, 8}), Status::kOk);
    CHECK_STATUS(dtu.config_send(client, 2, {server, 0, client, 4, 64, 1}), Status::kOk);
  }
  return 0;
}

// The largest payload a message to another node carries: a 65000-byte frame
// minus the bridge's 5-byte and the DTU's 25-byte header.
constexpr std::uint32_t kLargestRemotePayload = 64970;

// Server PE 0 with 64 KiB slots; the client (on another node) gets a send
// endpoint 3 for the largest message a frame carries, after one that asks
// for more than any frame can carry was refused, and the usual echo pair.
int configure_large_echo_server(Dtu& dtu, const Args& a) {
  CHECK_STATUS(dtu.config_receive(pe_arg(a, 0), 0, {18, 16}), Status::kOk);
  return 0;
}

int configure_large_echo_client(Dtu& dtu, const Args& a) {
  const PeId server = pe_arg(a, 0);
  const PeId client = pe_arg(a, 1);
  CHECK_STATUS(dtu.config_receive(client, 4, {17, 16}), Status::kOk);
  CHECK_STATUS(dtu.config_send(client, 3, {server, 0, client, 1, 65511, 4}), Status::kTooLarge);
  CHECK_STATUS(dtu.config_send(client, 3, {server, 0, client, 1, kLargestRemotePayload + 1, 4}),
               Status::kTooLarge);
  CHECK_STATUS(dtu.config_send(client, 3, {server, 0, client, 1, kLargestRemotePayload, 4}), Status::kOk);
  return configure_echo_clients(dtu, a);
}

int configure_echo(Dtu& dtu, const Args& a) {
  if (const int rc = configure_echo_server(dtu, a); rc != 0) return rc;
  return configure_echo_clients(dtu, a);
}

// Echoes until no request came for `idle` seconds (default 60).
int echo_server(Dtu& dtu, const Args& a) {
  const auto idle = std::chrono::duration<double>(a.empty() ? 60.0 : std::stod(a[0]));
  CHECK_STATUS(dtu.wait_for_endpoint(0, EndpointKind::kReceive), Status::kOk);
  for (;;) {
    ReceivedMessage m;
    const auto st = dtu.receive(0, m, std::chrono::duration_cast<std::chrono::nanoseconds>(idle));
    if (st != Status::kOk) return st == Status::kTimeout ? 0 : 5;
    const auto r = dtu.reply(m, m.payload);
    if (r != Status::kOk) dtu.ack(m);  // the client died between request and reply
  }
}

// Round trips until `seconds` pass; with "expect-peer-gone", succeeds only if
// the server disappears meanwhile and the DTU says so.
int echo_client(Dtu& dtu, const Args& a) {
  const auto seconds = std::stod(a.at(0));
  const bool expect_gone = a.size() > 1 && a[1] == "expect-peer-gone";
  CHECK_STATUS(dtu.wait_for_endpoint(2, EndpointKind::kSend), Status::kOk);
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::uint64_t round = 0;
  while (std::chrono::steady_clock::now() < until) {
    const auto st = dtu.send(2, std::as_bytes(std::span(&round, 1)), round, SendMode::kWait, 5s);
    if (st != Status::kOk) {
      if (expect_gone && (st == Status::kPeerGone || st == Status::kTerminated)) return 0;
      fmt::print(stderr, "echo client: send: {}\n", to_string(st));
      return 3;
    }
    ReceivedMessage m;
    const auto rs = dtu.receive(1, m, 5s);
    if (rs != Status::kOk) {
      if (expect_gone &&
          (rs == Status::kPeerGone || rs == Status::kNotConfigured || rs == Status::kTimeout)) {
        return dtu.send(2, {}, 0) == Status::kPeerGone ? 0 : 6;
      }
      fmt::print(stderr, "echo client: receive: {}\n", to_string(rs));
      return 4;
    }
    CHECK(m.header.label == round);
    dtu.ack(m);
    ++round;
  }
  return expect_gone ? 7 : 0;
}

// One message of the largest size there and back, then the usual round trips.
int large_echo_client(Dtu& dtu, const Args& a) {
  CHECK_STATUS(dtu.wait_for_endpoint(3, EndpointKind::kSend), Status::kOk);
  std::vector<std::byte> big(kLargestRemotePayload);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i * 7 + 3);
  CHECK_STATUS(dtu.send(3, big, 77, SendMode::kWait, 5s), Status::kOk);
  ReceivedMessage m;
  CHECK_STATUS(dtu.receive(4, m, 10s), Status::kOk);
  CHECK(m.header.label == 77);
  CHECK(m.payload.size() == big.size() && std::equal(big.begin(), big.end(), m.payload.begin()));
  dtu.ack(m);
  return echo_client(dtu, a);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: dtu_test_pe ROLE [ARGS...]\n");
    return 64;
  }
  const std::string role = argv[1];
  const Args args(argv + 2, argv + argc);
  try {
    if (role == "forger") return forger(args);
    if (role == "control-garbage") return control_garbage(args);
    if (role == "mailbox-garbage") return mailbox_garbage(args);
    if (role == "deaf") return deaf(args);
    const std::map<std::string, std::function<int(Dtu&, const Args&)>> roles{
        {"configure-messaging", configure_messaging},
        {"configure-after-idle", configure_after_idle},
        {"configure-receiver", configure_receiver},
        {"configure-sender", configure_sender},
        {"burst-sender", burst_sender},
        {"burst-receiver", burst_receiver},
        {"configure-echo-server", configure_echo_server},
        {"configure-echo-clients", configure_echo_clients},
        {"configure-hostile-scene", configure_hostile_scene},
        {"steady-receiver", steady_receiver},
        {"steady-sender", steady_sender},
        {"configure-large-echo-server", configure_large_echo_server},
        {"configure-large-echo-client", configure_large_echo_client},
        {"large-echo-client", large_echo_client},
        {"sender", sender},
        {"receiver", receiver},
        {"unprivileged", unprivileged},
        {"configuration-rules", configuration_rules},
        {"idle", idle},
        {"flood-config", flood_config},
        {"configure-many", configure_many},
        {"late-looker", late_looker},
        {"configure-crosstalk", configure_crosstalk},
        {"crosstalk-sender", crosstalk_sender},
        {"crosstalk-receiver", crosstalk_receiver},
        {"configure-memory", configure_memory},
        {"configure-remote-memory", configure_remote_memory},
        {"configure-memory-owner", configure_memory_owner},
        {"configure-remote-memory-reader", configure_remote_memory_reader},
        {"remote-memory-until-gone", remote_memory_until_gone},
        {"memory-user", memory_user},
        {"memory-owner", memory_owner},
        {"clear-memory", clear_memory},
        {"configure-forgery", configure_forgery},
        {"forgery-victim", forgery_victim},
        {"configure-echo", configure_echo},
        {"echo-server", echo_server},
        {"echo-client", echo_client},
    };
    auto it = roles.find(role);
    if (it == roles.end()) {
      fmt::print(stderr, "dtu_test_pe: unknown role {}\n", role);
      return 64;
    }
    auto dtu = Dtu::from_environment();
    return it->second(*dtu, args);
  } catch (const apps::CheckFailed& f) {
    return 10 + f.line % 100;
  } catch (const std::exception& e) {
    fmt::print(stderr, "dtu_test_pe {}: {}\n", role, e.what());
    return 2;
  }
}
