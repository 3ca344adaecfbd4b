// A real node (its event loop on its own thread) and two PEs attached to
// it, a privileged one (a kernel) and an ordinary one. The fuzzer writes
// their memory request channels (any op, endpoint, offset, length, data;
// any bytes), scribbles on their doorbell and private pages, and writes
// their control sockets: control requests with fields from the fuzzer (any op,
// PE, endpoint, send/receive/memory configuration, VPE, command), bytes of
// any length (short, long, longer than the node's buffer), and fds attached
// (up to more than a message may carry, so SCM_RIGHTS is cut). The node
// answers each datagram once, in order; it never carries out an ordinary
// PE's request; it counts a request of the wrong size as malformed. Any
// crash, sanitizer report or unanswered request is a finding.
#include <fuzzer/FuzzedDataProvider.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "node/node.hpp"
#include "protocol/control_messages.hpp"
#include "protocol/fd_socket.hpp"
#include "protocol/pe_page.hpp"
#include "vdtu/channel.hpp"
#include "vdtu/mapped_region.hpp"

namespace {

using namespace vdtu;
using namespace vdtu::dtu;
using namespace std::chrono_literals;

constexpr std::uint32_t kPes = 8;

Node& node() {
  static Node* n = [] {
    NodeConfig c;
    c.node_id = 0;
    c.pe_count = kPes;
    c.endpoints_per_pe = 8;
    c.pe_memory_bytes = 1 << 16;
    c.global_memory_bytes = 1 << 20;
    return new Node(c);  // lives as long as the process (the fuzzer never ends it)
  }();
  return *n;
}

// A PE as the node sees it: its control socket, and what the hello handed
// it (its doorbell and private page, which it may scribble on, and its
// memory request and answer channels).
struct AttachedPe {
  UniqueFd socket;
  PeId pe = 0;
  std::vector<UniqueFd> fds;  // the hello's: doorbell, memory, requests (2), answers (2), private page
  std::unique_ptr<SharedChannel> requests;
  std::unique_ptr<SharedChannel> answers;
  std::unique_ptr<Producer> to_node;
  std::unique_ptr<Consumer> from_node;

  void take_hello() {
    std::vector<std::byte> buffer(sizeof(NodeMessage) + 64);
    std::size_t n = 0;
    if (recv_with_fds(socket.get(), buffer, n, fds, true) != RecvResult::kMessage ||
        n != sizeof(NodeMessage) || fds.size() != 7) {
      std::abort();
    }
    NodeMessage hello{};
    std::memcpy(&hello, buffer.data(), sizeof(hello));
    const ChannelGeometry g{hello.slot_count, hello.slot_size};
    requests = std::make_unique<SharedChannel>(
        SharedChannel::attach(UniqueFd(::dup(fds[2].get())), UniqueFd(::dup(fds[3].get())), g));
    answers = std::make_unique<SharedChannel>(
        SharedChannel::attach(UniqueFd(::dup(fds[4].get())), UniqueFd(::dup(fds[5].get())), g));
    to_node = std::make_unique<Producer>(*requests);
    from_node = std::make_unique<Consumer>(*answers);
  }
};

// A PE slot frees once the node saw the last one's socket close.
AttachedPe attach(bool privileged) {
  for (int tries = 0;; ++tries) {
    try {
      AttachedPe a;
      a.socket = node().attach(privileged, a.pe);
      a.take_hello();
      return a;
    } catch (const std::runtime_error&) {
      if (tries > 2000) std::abort();
      std::this_thread::sleep_for(1ms);
    }
  }
}

// Reads what the node sent until its answer to our request arrives; false if
// none came within a second. Updates (with their fds) are read and dropped.
bool await_reply(const AttachedPe& from, const AttachedPe& other, NodeMessage& reply) {
  std::vector<std::byte> buffer(sizeof(NodeMessage) + 64);
  std::vector<UniqueFd> fds;
  for (int waits = 0; waits < 1000;) {
    for (const auto* pe : {&other, &from}) {
      std::size_t n = 0;
      while (recv_with_fds(pe->socket.get(), buffer, n, fds, false) == RecvResult::kMessage) {
        NodeMessage m{};
        if (n != sizeof(m)) std::abort();  // the node sends whole messages only
        std::memcpy(&m, buffer.data(), sizeof(m));
        if (pe == &from && m.kind == NodeMessageKind::kReply) {
          reply = m;
          return true;
        }
      }
    }
    pollfd p[2] = {{from.socket.get(), POLLIN, 0}, {other.socket.get(), POLLIN, 0}};
    if (::poll(p, 2, 1) == 0) ++waits;
  }
  return false;
}

class Script {
 public:
  Script() : kernel_(attach(true)), user_(attach(false)) {}

  void run(FuzzedDataProvider& in) {
    for (int op = 0; op < 48 && in.remaining_bytes() > 0; ++op) {
      const bool privileged = in.ConsumeBool();
      const auto& from = privileged ? kernel_ : user_;
      const auto& other = privileged ? user_ : kernel_;
      std::vector<std::byte> bytes;
      bool well_formed = false;
      ControlRequest r{};
      const int kind = in.ConsumeIntegralInRange<int>(0, 5);
      if (kind == 4) {
        memory_request(in, privileged ? kernel_ : user_);
        continue;
      }
      if (kind == 5) {
        scribble(in, privileged ? kernel_ : user_);
        continue;
      }
      switch (kind) {
        case 0:
        case 1:
          r = request(in);
          well_formed = true;
          break;
        case 2: {  // any bytes, usually around the request's size
          const auto size = in.ConsumeBool() ? sizeof(ControlRequest) + in.ConsumeIntegralInRange<int>(-8, 8)
                                             : in.ConsumeIntegralInRange<std::size_t>(1, 2000);
          bytes = in.ConsumeBytes<std::byte>(size);
          bytes.resize(size == 0 ? 1 : size);
          break;
        }
        default:
          r = request(in);
          well_formed = true;
          break;
      }
      if (well_formed) {
        r.request_id = ++next_id_;
        bytes.resize(sizeof(r));
        std::memcpy(bytes.data(), &r, sizeof(r));
      }
      std::vector<UniqueFd> fds(in.ConsumeIntegralInRange<std::size_t>(0, 3) == 0
                                    ? in.ConsumeIntegralInRange<std::size_t>(1, 2 * kMaxFdsPerMessage)
                                    : 0);
      std::vector<int> raw;
      for (auto& fd : fds) {
        fd = UniqueFd(::eventfd(0, EFD_CLOEXEC));
        raw.push_back(fd.get());
      }
      if (raw.size() > kMaxFdsPerMessage) raw.resize(kMaxFdsPerMessage);  // send_with_fds' own limit
      if (!send_with_fds(from.socket.get(), bytes, raw)) continue;
      if (is_kick(bytes)) continue;  // "look at my mailbox": never answered
      NodeMessage reply{};
      if (!await_reply(from, other, reply)) {
        (void)std::fprintf(stderr, "no answer to a request of %zu bytes\n", bytes.size());
        std::abort();
      }
      if (bytes.size() != sizeof(ControlRequest) && reply.status != Status::kInvalidArgument) std::abort();
      const bool known = well_formed && r.magic == kControlMagic && r.op >= ControlOp::kConfigSend &&
                         r.op < ControlOp::kCount;
      if (well_formed && !known && reply.status != Status::kInvalidArgument) std::abort();
      if (known && !privileged && !user_privileged_ && reply.status != Status::kPermissionDenied)
        std::abort();
      if (well_formed && privileged && r.op == ControlOp::kPrivilege && r.magic == kControlMagic &&
          r.pe == user_.pe && reply.status == Status::kOk) {
        user_privileged_ = true;  // the kernel made it one of its own
      }
      if (well_formed && reply.request_id != r.request_id) std::abort();
    }
  }

 private:
  // A memory request with any fields (or any bytes) on the PE's request
  // channel: the node answers it once, with the request's label, and a read
  // it carries out returns exactly the bytes asked for.
  void memory_request(FuzzedDataProvider& in, AttachedPe& pe) {
    std::vector<std::byte> payload;
    MemoryRequest r{};
    if (in.ConsumeBool()) {
      r.op = static_cast<MemoryOp>(in.ConsumeIntegralInRange<int>(0, 3));
      r.ep = in.ConsumeIntegralInRange<EpId>(0, 10);
      r.length = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint32_t>(0, 300)
                                  : in.ConsumeIntegral<std::uint32_t>();
      r.offset = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint64_t>(0, 1 << 20)
                                  : in.ConsumeIntegral<std::uint64_t>();
      payload.resize(sizeof(r));
      std::memcpy(payload.data(), &r, sizeof(r));
      const auto data = in.ConsumeBytes<std::byte>(
          in.ConsumeBool() ? r.length : in.ConsumeIntegralInRange<std::size_t>(0, 300));
      payload.insert(payload.end(), data.begin(), data.end());
    } else {
      payload = in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 40));
    }
    if (payload.size() > pe.to_node->max_payload()) payload.resize(pe.to_node->max_payload());
    MessageHeader h{};
    h.replylabel = ++next_memory_id_;
    if (pe.to_node->try_send(h, payload) != Status::kOk) return;
    MessageView m;
    for (int waits = 0; pe.from_node->try_fetch(m) != Status::kOk; ++waits) {
      if (waits > 2000) {
        (void)std::fprintf(stderr, "no answer to a memory request of %zu bytes\n", payload.size());
        std::abort();
      }
      std::this_thread::sleep_for(500us);
    }
    if (m.header.label != h.replylabel || m.payload.empty()) std::abort();
    const auto st = static_cast<Status>(m.payload[0]);
    if (st == Status::kOk && payload.size() >= sizeof(r) && r.op == MemoryOp::kRead &&
        m.payload.size() != std::size_t{r.length} + 1) {
      std::abort();
    }
    if (st == Status::kOk && payload.size() >= sizeof(r) && r.op != MemoryOp::kRead &&
        r.op != MemoryOp::kWrite) {
      (void)std::fprintf(stderr, "a memory request with op %d was answered kOk\n", static_cast<int>(r.op));
      std::abort();
    }
    pe.from_node->ack();
  }

  // The PE writes anything into its doorbell page or private page; the node
  // rings, wakes and bumps them later (requests from the kernel).
  static void scribble(FuzzedDataProvider& in, AttachedPe& pe) {
    const bool doorbell = in.ConsumeBool();
    const int fd = pe.fds[doorbell ? 0 : 6].get();
    const auto size = static_cast<std::size_t>(::lseek(fd, 0, SEEK_END));
    if (size < 8) return;
    MappedRegion page(fd, size);
    for (int writes = in.ConsumeIntegralInRange<int>(1, 8); writes > 0; --writes) {
      const auto at = in.ConsumeIntegralInRange<std::size_t>(0, size - 8);
      auto value = in.ConsumeIntegral<std::uint64_t>();
      if (!doorbell) never_launch(at, value);
      std::memcpy(page.data() + at, &value, sizeof(value));
    }
  }

  static bool is_kick(const std::vector<std::byte>& bytes) {
    const auto kick = kMailboxKick;
    return bytes.size() == sizeof(kick) && std::memcmp(bytes.data(), &kick, sizeof(kick)) == 0;
  }

  // A kernel's private page holds its mailbox: whatever lands there is a
  // request the node takes (at once, from another thread), except that the
  // fuzzer never starts programs.
  static void never_launch(std::size_t at, std::uint64_t& value) {
    constexpr std::size_t op_at = PePage::kRequestOffset + offsetof(ControlRequest, op);
    if (op_at < at || op_at >= at + sizeof(value)) return;
    auto& op = reinterpret_cast<std::byte*>(&value)[op_at - at];
    if (op == static_cast<std::byte>(ControlOp::kLaunch)) op = static_cast<std::byte>(ControlOp::kWake);
  }

  ControlRequest request(FuzzedDataProvider& in) const {
    ControlRequest r{};
    r.magic =
        in.ConsumeIntegralInRange<int>(0, 15) == 0 ? in.ConsumeIntegral<std::uint32_t>() : kControlMagic;
    r.op = static_cast<ControlOp>(in.ConsumeIntegralInRange<int>(0, static_cast<int>(ControlOp::kCount)));
    if (r.op == ControlOp::kLaunch) r.op = ControlOp::kWake;  // never start programs named by the fuzzer
    r.ep = in.ConsumeIntegralInRange<EpId>(0, 10);
    r.pe = pick_pe(in);
    r.send.target_pe = pick_pe(in);
    r.send.target_ep = in.ConsumeIntegralInRange<EpId>(0, 10);
    r.send.label = in.ConsumeIntegral<std::uint64_t>();
    r.send.credits = in.ConsumeBool() ? kCreditsUnlimited : in.ConsumeIntegralInRange<std::uint32_t>(0, 5000);
    r.send.max_msg_size = in.ConsumeIntegralInRange<std::uint32_t>(0, 70000);
    r.send.reply_ep = in.ConsumeBool() ? kNoReplyEp : in.ConsumeIntegralInRange<EpId>(0, 10);
    r.receive.buffer_order = in.ConsumeIntegralInRange<std::uint8_t>(0, 20);
    r.receive.slot_order = in.ConsumeIntegralInRange<std::uint8_t>(0, 20);
    r.memory.target_pe = in.ConsumeBool() ? kGlobalMemoryPe : pick_pe(in);
    r.memory.offset = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint64_t>(0, 1 << 20)
                                       : in.ConsumeIntegral<std::uint64_t>();
    r.memory.size = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::uint64_t>(0, 1 << 20)
                                     : in.ConsumeIntegral<std::uint64_t>();
    r.memory.perms = in.ConsumeIntegral<std::uint8_t>();
    r.memory.node = in.ConsumeBool() ? kThisNode : in.ConsumeIntegral<std::uint16_t>();
    r.vpe = in.ConsumeIntegral<VpeId>();
    return r;
  }

  PeId pick_pe(FuzzedDataProvider& in) const {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: return kernel_.pe;
      case 1: return user_.pe;
      case 2: return in.ConsumeIntegralInRange<PeId>(0, kPes + 1);
      default: return in.ConsumeIntegral<PeId>();
    }
  }

  AttachedPe kernel_;
  AttachedPe user_;
  std::uint64_t next_id_ = 0;
  std::uint64_t next_memory_id_ = 0;
  bool user_privileged_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Script script;
  script.run(in);
  return 0;
}
