// The PE table's life cycle: slots, launching and attaching PEs, their
// control sockets and exits, and the per-PE queues of endpoint updates.
#include "node_core.hpp"
#include "common/log.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "common/process_hardening.hpp"
#include "common/sealed_memfd.hpp"
#include "node_bridge.hpp"
#include "protocol/fd_socket.hpp"
#include "sandbox/pe_sandbox.hpp"
#include "wake_reasons.hpp"

namespace vdtu::dtu {
namespace {

constexpr ChannelGeometry kMemoryChannelGeometry{4, 65536};
// A PE that leaves this many updates unread is not taking them: it is killed
// rather than left with a view of its endpoints that diverges from ours.
constexpr std::size_t kMaxQueuedUpdates = 4096;
// Requests taken from one PE per event, so that one chatty PE cannot hold
// the loop while others wait.
constexpr int kRequestsPerTurn = 32;
constexpr int kSocketBuffer = 4 << 20;  // room for many updates before a slow PE reads them
// Open files a node holds: per PE about 9 (control socket, pidfd, doorbell,
// page, memory, two memory channels, and a channel pair per binding: a VPE
// has two or three) measured with 1023 VPEs; kernels bind more. Room for
// twice that, plus the node's own.
constexpr rlim_t kOpenFilesPerPe = 16;
constexpr rlim_t kOpenFilesOfTheNode = 1024;

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void check(const NodeConfig& config) {
  if (config.pe_count == 0 || config.pe_count > kChannelsPerEndpoint) {
    throw std::invalid_argument(fmt::format("a node hosts 1 to {} PEs", kChannelsPerEndpoint));
  }
  if (config.endpoints_per_pe == 0 || config.endpoints_per_pe > kMaxDoorbellEndpoints ||
      config.privileged_endpoints > kMaxDoorbellEndpoints) {
    throw std::invalid_argument("a PE has 1 to 255 endpoints");
  }
  if (std::uint32_t{config.first_pe} + config.pe_count > kGlobalMemoryPe) {
    throw std::invalid_argument("PE ids must stay below 0xffff");
  }
}

// Everything a PE slot held while it ran goes; what says how it ended stays.
void release_resources(PeRecord& p) {
  PeRecord ended;
  ended.used = true;
  ended.pid = p.pid;
  ended.exit_code = p.exit_code;
  ended.retired_at = p.retired_at;
  p = std::move(ended);
}

bool is_kick(std::span<const std::byte> bytes) {
  std::uint32_t word = 0;
  if (bytes.size() != sizeof(word)) return false;
  std::memcpy(&word, bytes.data(), sizeof(word));
  return word == kMailboxKick;
}

}  // namespace

std::uint32_t channel_slots(std::uint32_t credits, std::uint32_t receive_slots) {
  const std::uint32_t wanted =
      credits == kCreditsUnlimited ? receive_slots : std::min(credits, receive_slots);
  return std::max<std::uint32_t>(2, std::bit_ceil(wanted));
}

SendConfig with_credits_for(SendConfig c, std::uint32_t slots) {
  if (c.credits != kCreditsUnlimited || c.reply_ep != kNoReplyEp) c.credits = std::min(c.credits, slots);
  return c;
}

NodeCore::NodeCore(NodeConfig config, EventWatcher& watcher, PeLauncher& launcher)
    : config_(std::move(config)), watcher_(watcher), launcher_(launcher) {
  check(config_);
  init_logging();
  // Non-dumpable: no PE reaches the node through /proc. More fds: as root
  // the hard limit is raised to what the PEs may need.
  const rlim_t wanted = kOpenFilesOfTheNode + kOpenFilesPerPe * config_.pe_count;
  if (const auto limit = harden_process(wanted); limit < wanted) {
    fmt::print(stderr,
               "vdtu node: {} PEs may need up to {} open files, but RLIMIT_NOFILE allows {}: beyond it, "
               "starting a PE or binding a channel fails with 'Too many open files' (raise the hard limit, "
               "e.g. ulimit -Hn, or run the node as root)\n",
               config_.pe_count, wanted, limit);
  }
  pes_.resize(config_.pe_count);
  global_memory_fd_ = make_sealed_memfd("vdtu-global-memory", config_.global_memory_bytes);
  global_memory_ = MappedRegion(global_memory_fd_.get(), config_.global_memory_bytes);
  if (!config_.peers.empty()) bridge_ = std::make_unique<NodeBridge>(*this, watcher_);
}

NodeCore::~NodeCore() = default;

std::optional<std::uint32_t> NodeCore::index_of(PeId pe) const {
  const std::uint32_t index = static_cast<std::uint16_t>(pe - config_.first_pe);
  if (index >= pes_.size() || !pes_[index].alive) return std::nullopt;
  return index;
}

// Never-used slots first, then the one that ended longest ago: a PE id comes
// back as late as possible, so stale references to it are likely gone.
std::optional<std::uint32_t> NodeCore::free_slot() const {
  std::optional<std::uint32_t> best;
  for (std::uint32_t i = 0; i < pes_.size(); ++i) {
    const auto& p = pes_[i];
    if (!p.free()) continue;
    if (!p.used) return i;
    if (!best || p.retired_at < pes_[*best].retired_at) best = i;
  }
  return best;
}

std::uint32_t NodeCore::prepare_slot(bool privileged) {
  const auto index = free_slot();
  if (!index) throw std::runtime_error("no free PE on this node");
  auto& p = pes_[*index];
  p = PeRecord{};
  p.doorbell = Doorbell::create(config_.endpoints_of(privileged));
  p.page = PePage::create();
  p.memory_fd = make_sealed_memfd("vdtu-pe-memory", config_.pe_memory_bytes);
  p.memory = MappedRegion(p.memory_fd.get(), config_.pe_memory_bytes);
  p.endpoints.assign(config_.endpoints_of(privileged), NodeEndpoint{});
  p.privileged = privileged;
  p.vpe = static_cast<VpeId>(global_id(*index));
  p.memory_requests = std::make_unique<SharedChannel>(SharedChannel::create(kMemoryChannelGeometry));
  p.memory_responses = std::make_unique<SharedChannel>(SharedChannel::create(kMemoryChannelGeometry));
  p.memory_requests->activate();
  p.memory_responses->activate();
  p.memory_in = std::make_unique<Consumer>(*p.memory_requests);
  p.memory_out = std::make_unique<Producer>(*p.memory_responses);
  return *index;
}

namespace {

// The PE's end of a new control connection, and ours.
std::pair<UniqueFd, UniqueFd> control_pair() {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) {
    throw_errno("socketpair");
  }
  UniqueFd node_end(pair[0]);
  UniqueFd pe_end(pair[1]);
  ::setsockopt(node_end.get(), SOL_SOCKET, SO_SNDBUFFORCE, &kSocketBuffer, sizeof(kSocketBuffer));
  // The PE's end blocks: its library waits for answers in recvmsg.
  const int flags = ::fcntl(pe_end.get(), F_GETFL);
  ::fcntl(pe_end.get(), F_SETFL, flags & ~O_NONBLOCK);
  return {std::move(node_end), std::move(pe_end)};
}

}  // namespace

// The first message on the control socket: who the PE is, and its private fds.
void NodeCore::open_slot(std::uint32_t index, UniqueFd node_end) {
  auto& p = pes_[index];
  NodeMessage hello{};
  hello.kind = NodeMessageKind::kHello;
  hello.pe = global_id(index);
  hello.vpe = p.vpe;
  hello.node_id = config_.node_id;
  hello.privileged = p.privileged ? 1 : 0;
  hello.endpoints = static_cast<std::uint32_t>(p.endpoints.size());
  hello.local_memory_bytes = config_.pe_memory_bytes;
  hello.page_epoch = p.page.config_epoch();
  hello.slot_count = kMemoryChannelGeometry.slot_count;
  hello.slot_size = kMemoryChannelGeometry.slot_size;
  const std::array<int, 7> fds{p.doorbell.fd(),
                               p.memory_fd.get(),
                               p.memory_requests->memfd(),
                               p.memory_requests->eventfd(),
                               p.memory_responses->memfd(),
                               p.memory_responses->eventfd(),
                               p.page.fd()};
  if (!send_with_fds(node_end.get(), std::as_bytes(std::span(&hello, 1)), fds)) throw_errno("hello");
  p.socket = std::move(node_end);
  p.used = true;
  p.alive = true;
  watcher_.watch(p.socket.get(), event_tag(EventKind::kControl, index));
  // Privileged PEs hear of every PE that ends, also of those that ended
  // before they started (a kernel's VPE that exited at once).
  for (std::uint32_t k = 0; p.privileged && k < pes_.size(); ++k) {
    if (pes_[k].alive || !pes_[k].exit_code) continue;
    queue(exit_notice(index, k));
  }
  watcher_.watch(p.memory_requests->eventfd(),
                 event_tag(EventKind::kMemory, static_cast<std::uint32_t>(p.memory_requests->eventfd())));
}

PeId NodeCore::launch(const PeProgram& program) {
  const auto index = prepare_slot(program.privileged);
  auto [node_end, pe_end] = control_pair();
  LaunchedProcess process;
  try {
    process = launcher_.launch(program, pe_end.get(), index);
  } catch (...) {
    pes_[index] = PeRecord{};  // never ran: the slot stays unused
    throw;
  }
  auto& p = pes_[index];
  p.pid = process.pid;
  p.pidfd = std::move(process.pidfd);
  open_slot(index, std::move(node_end));
  watcher_.watch(p.pidfd.get(), event_tag(EventKind::kExit, index));
  spdlog::debug("node {} PE {}: runs {} (pid {}{})", config_.node_id, global_id(index), program.path, p.pid,
                program.privileged ? ", privileged" : "");
  return global_id(index);
}

UniqueFd NodeCore::attach(bool privileged, PeId& pe) {
  const auto index = prepare_slot(privileged);
  auto [node_end, pe_end] = control_pair();
  pes_[index].in_process = true;
  open_slot(index, std::move(node_end));
  pe = global_id(index);
  return std::move(pe_end);
}

void NodeCore::kill_pe(std::uint32_t index) {
  auto& p = pes_[index];
  if (!p.alive) return;
  if (p.in_process) {
    ::shutdown(p.socket.get(), SHUT_RDWR);  // its DTU sees the node gone; the close retires it
  } else if (p.pid > 0) {
    ::kill(p.pid, SIGKILL);
  }
}

void NodeCore::kill_all() {
  for (std::uint32_t i = 0; i < pes_.size(); ++i) kill_pe(i);
}

void NodeCore::on_control(std::uint32_t index) {
  std::array<std::byte, 512> buffer{};
  std::vector<UniqueFd> fds;  // a PE has no business sending fds: closed on scope exit
  for (int turn = 0; turn < kRequestsPerTurn; ++turn) {
    auto& p = pes_[index];
    if (!p.alive) return;
    std::size_t n = 0;
    const auto result = recv_with_fds(p.socket.get(), buffer, n, fds, false);
    if (result == RecvResult::kWouldBlock) return;
    if (result == RecvResult::kClosed) {
      watcher_.unwatch(p.socket.get());
      if (p.in_process) {
        p.exit_code = 0;
        retire_pe(index);
      }
      return;  // a process's pidfd tells us when it is gone
    }
    if (result == RecvResult::kMessage && is_kick(std::span(buffer).first(n))) {
      ++stats_.mailbox_kicks;  // the loop's round reads the page
      continue;
    }
    serve_control_request(index, std::span(buffer).first(result == RecvResult::kMessage ? n : 0));
    flush_updates();
  }
}

void NodeCore::on_exit(std::uint32_t index) {
  auto& p = pes_[index];
  if (!p.alive || p.pid <= 0) return;
  // What the PE started ends with it; its group id cannot be reused before we reap it.
  sandbox::Sandbox::kill_process_group(p.pid);
  int status = 0;
  if (::waitpid(p.pid, &status, WNOHANG) != p.pid) return;
  p.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  spdlog::debug("node {} PE {}: exited with {}", config_.node_id, global_id(index), *p.exit_code);
  retire_pe(index);
}

// A PE that ended: every endpoint of it and aimed at it goes, and the
// privileged PEs (kernels) learn who is gone and how.
void NodeCore::retire_pe(std::uint32_t index) {
  auto& p = pes_[index];
  if (p.pidfd) watcher_.unwatch(p.pidfd.get());
  watcher_.unwatch(p.socket.get());
  watcher_.unwatch(p.memory_requests->eventfd());
  p.alive = false;
  const PeId self = global_id(index);
  for (std::uint32_t s = 0; s < pes_.size(); ++s) {
    if (!pes_[s].alive) continue;
    for (std::uint32_t sep = 0; sep < pes_[s].endpoints.size(); ++sep) {
      const auto& se = pes_[s].endpoints[sep];
      if (se.kind == EndpointKind::kSend && se.remote_binding == 0 && se.send.target_pe == self) {
        invalidate(s, static_cast<EpId>(sep), Status::kPeerGone);
      }
    }
  }
  for (std::uint32_t ep = 0; ep < p.endpoints.size(); ++ep)
    invalidate(index, static_cast<EpId>(ep), Status::kPeerGone);
  if (bridge_) bridge_->pe_gone(index);
  p.memory_requests->terminate();
  p.memory_responses->terminate();
  ++stats_.pes_exited;
  p.retired_at = ++retirements_;
  release_resources(p);
  for (std::uint32_t k = 0; k < pes_.size(); ++k) {
    if (pes_[k].alive && pes_[k].privileged) queue(exit_notice(k, index));
  }
  flush_updates();
}

// ---- updates --------------------------------------------------------------------

// Tells PE `to` that the PE in slot `ended` ended, and how.
Update NodeCore::exit_notice(std::uint32_t to, std::uint32_t ended) const {
  Update u{to, {}, {}, {}};
  u.message.kind = NodeMessageKind::kPeExited;
  u.message.pe = global_id(ended);
  u.message.label = static_cast<std::uint64_t>(pes_[ended].exit_code.value_or(0));
  return u;
}

// A message is announced (the PE's epoch moves) as it is queued, and a
// kernel's answer is posted in its page at once, after everything queued
// before it was announced; the system calls that carry the messages come at
// the end of the round, so a kernel's configuration does not wait for the
// fds of the PEs it configured (a PE that sees its epoch move reads its
// socket until it has them all).
void NodeCore::queue(Update update) {
  auto& p = pes_[update.pe_index];
  if (!p.alive || p.condemned) return;
  if (update.answer_in_page) {
    const auto& m = update.message;
    if (p.page.post_answer({static_cast<std::uint32_t>(m.request_id), m.status, m.pe}))
      p.page.wake_answer_sleeper();
    return;
  }
  p.page.announce(1);
  if (p.outbox.empty()) waiting_updates_.push_back(update.pe_index);
  p.outbox.push_back(std::move(update));
}

// Wake-ups come last: a woken PE competes for the CPUs with the requester
// waiting for its answer, and with this loop while it still sends.
void NodeCore::flush_updates() {
  auto waiting = std::exchange(waiting_updates_, {});
  std::vector<std::uint32_t> to_wake;
  for (const auto index : waiting) {
    if (deliver(index)) to_wake.push_back(index);
  }
  for (const auto index : to_wake) pes_[index].doorbell.wake();
}

// Sends what the PE's socket takes now, in order. A full socket (or too many
// fds in flight) keeps the rest queued until it has room; only a PE that
// leaves kMaxQueuedUpdates unread is killed.
bool NodeCore::deliver(std::uint32_t index) {
  auto& p = pes_[index];
  if (!p.alive) return false;  // retired since it was queued: its page is gone
  WakeReasons reasons;
  while (p.alive && !p.condemned && !p.outbox.empty()) {
    const auto& u = p.outbox.front();
    if (send_with_fds(p.socket.get(), std::as_bytes(std::span(&u.message, 1)), u.fds)) {
      reasons.add(u.message);
      p.outbox.pop_front();
      continue;
    }
    if (!keep_for_later(index)) break;
  }
  // The epoch moved (queue) before we look at the sleeper, as the PE
  // announces its sleep before its last look at the epoch: one of us sees
  // the other.
  return reasons.end(p.page.sleeper());
}

// After a failed send (errno says why): the PE's queue waits for room, is
// dropped because the PE is ending, or the PE is killed for not reading it.
// False when delivery stops for now.
bool NodeCore::keep_for_later(std::uint32_t index) {
  auto& p = pes_[index];
  if (errno == EPIPE || errno == ECONNRESET) {
    p.outbox.clear();  // it is ending: its exit retires it
    return false;
  }
  if ((errno == EAGAIN || errno == ETOOMANYREFS || errno == ENOBUFS) && p.outbox.size() < kMaxQueuedUpdates) {
    waiting_updates_.push_back(index);
    if (errno == EAGAIN) watcher_.watch(p.socket.get(), event_tag(EventKind::kControl, index), true);
    return false;
  }
  spdlog::warn("node {} PE {}: does not take its endpoint updates ({} queued: {}); killing it",
               config_.node_id, global_id(index), p.outbox.size(),
               std::error_code(errno, std::generic_category()).message());
  p.condemned = true;
  p.outbox.clear();
  kill_pe(index);
  return false;
}

bool NodeCore::make_channel_ahead() {
  try {
    return channel_pool_.make_one_ahead();
  } catch (const std::exception& e) {
    // Out of fds or memory: requests make their channels on demand and say so.
    spdlog::debug("node {}: no channel made ahead: {}", config_.node_id, e.what());
    return false;
  }
}

void NodeCore::on_writable(std::uint32_t index) {
  auto& p = pes_[index];
  if (!p.alive) return;
  watcher_.watch(p.socket.get(), event_tag(EventKind::kControl, index));
  std::erase(waiting_updates_, index);
  if (deliver(index)) p.doorbell.wake();
}

// ---- the loop's rounds ------------------------------------------------------------

bool NodeCore::bridge_step(Clock::time_point now) {
  if (!bridge_) return false;
  const bool worked = bridge_->step(now);
  flush_updates();
  return worked;
}

// A kernel that posts a request while we sleep kicks us through its socket;
// one that posted before we said so is seen here.
bool NodeCore::arm_mailboxes() {
  bool ready = false;
  for (auto& p : pes_) {
    if (!p.alive || !p.privileged) continue;
    p.page.set_node_sleeping(true);
    ready = ready || p.page.has_request(p.mailbox_seen);
  }
  if (ready) disarm_mailboxes();
  return !ready;
}

void NodeCore::disarm_mailboxes() {
  for (auto& p : pes_) {
    if (p.alive && p.privileged) p.page.set_node_sleeping(false);
  }
}

bool NodeCore::arm_for_sleep() {
  if (!arm_mailboxes()) return false;
  std::vector<Consumer*> armed;
  bool ready = false;
  for (auto& p : pes_) {
    if (!p.alive || p.memory_remote_pending) continue;
    if (!p.memory_in->arm_event()) {
      ready = true;
      break;
    }
    armed.push_back(p.memory_in.get());
  }
  if (!ready && bridge_ && !bridge_->arm_for_sleep()) ready = true;
  if (!ready) return true;
  for (auto* c : armed) c->cancel_event();
  disarm_mailboxes();
  return false;
}

void NodeCore::disarm_after_sleep() {
  disarm_mailboxes();
  for (auto& p : pes_) {
    if (p.alive) p.memory_in->cancel_event();
  }
  if (bridge_) bridge_->disarm_after_sleep();
}

std::chrono::milliseconds NodeCore::sleep_limit(Clock::time_point now) const {
  using namespace std::chrono_literals;
  auto limit = bridge_ ? bridge_->sleep_limit(now) : 100ms;
  // Retries: updates waiting for fd room, PEs whose memory answer has no room.
  // A PE that saw its epoch move waits for those updates, so soon.
  if (!waiting_updates_.empty()) limit = std::min<std::chrono::milliseconds>(limit, 1ms);
  return limit;
}

bool NodeCore::bridge_drained() const { return !bridge_ || bridge_->quiet(); }

// ---- queries ------------------------------------------------------------------------

NodeStats NodeCore::stats() const {
  auto st = stats_;
  if (bridge_) bridge_->add_stats(st);
  st.channels_alive = 0;
  for (const auto& p : pes_) {
    for (const auto& e : p.endpoints) {
      for (const auto& ch : e.inbound) st.channels_alive += ch ? 1 : 0;
    }
  }
  return st;
}

std::optional<int> NodeCore::exit_code(PeId pe) const {
  const std::uint32_t index = static_cast<std::uint16_t>(pe - config_.first_pe);
  return index < pes_.size() ? pes_[index].exit_code : std::nullopt;
}

pid_t NodeCore::pid_of(PeId pe) const {
  const std::uint32_t index = static_cast<std::uint16_t>(pe - config_.first_pe);
  return index < pes_.size() ? pes_[index].pid : -1;
}

bool NodeCore::all_exited() const {
  return std::none_of(pes_.begin(), pes_.end(), [](const PeRecord& p) { return p.alive; });
}

std::uint16_t NodeCore::bridge_port() const { return bridge_ ? bridge_->port() : 0; }

}  // namespace vdtu::dtu
