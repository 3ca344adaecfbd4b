// Node lifecycle: PE launch (posix_spawn), the control thread (requests and
// process exits, via epoll on control sockets and pidfds), the memory thread.
#include "node.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "channel/spin_then_sleep.hpp"
#include "fd_socket.hpp"
#include "node_bridge.hpp"
#include "node_state.hpp"

namespace vdtu::dtu {
namespace {

constexpr int kChildControlFd = 3;
constexpr std::uint64_t kStopTag = ~std::uint64_t{0};
constexpr std::uint64_t kPidfdFlag = std::uint64_t{1} << 32U;
constexpr ChannelGeometry kMemoryChannelGeometry{4, 65536};
constexpr auto kSpinAfterRequest = std::chrono::microseconds(200);  // see memory_service.cpp

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

UniqueFd make_memory(std::size_t bytes, const char* name) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) throw_errno("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) throw_errno("ftruncate");
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) throw_errno("F_ADD_SEALS");
  return fd;
}

pid_t spawn(const PeProgram& program, int control_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, control_fd, kChildControlFd);  // dup2 clears CLOEXEC
  std::vector<std::string> env_strings{
      std::string(Dtu::kControlFdVariable) + "=" + std::to_string(kChildControlFd),
      std::string(Dtu::kNodePidVariable) + "=" + std::to_string(::getpid())};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "VDTU_CONTROL_FD=", 16) != 0 && std::strncmp(*e, "VDTU_NODE_PID=", 14) != 0)
      env_strings.emplace_back(*e);
  }
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_strings{program.path};
  arg_strings.insert(arg_strings.end(), program.args.begin(), program.args.end());
  std::vector<char*> argv;
  argv.reserve(arg_strings.size() + 1);
  for (auto& s : arg_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  // The node may block signals to read them from a signalfd (`vdtu node`);
  // a PE starts with none blocked and the usual default actions.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigset_t defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program.path.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "cannot start " + program.path);
  return pid;
}

void epoll_add(int epoll, int fd, std::uint64_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  ::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev);
}

}  // namespace

struct ControlLoop {
  NodeState& state;
  UniqueFd epoll;

  void handle_socket(std::uint32_t index) {
    std::array<std::byte, 512> buffer{};
    std::vector<UniqueFd> fds;  // a PE has no business sending fds: closed on scope exit
    std::vector<Update> updates;
    for (;;) {
      std::size_t n = 0;
      {
        std::lock_guard lock(state.mutex);
        if (!state.pes[index].alive) return;
      }
      const auto result = recv_with_fds(state.pes[index].socket.get(), buffer, n, fds, false);
      if (result == RecvResult::kWouldBlock) return;
      if (result == RecvResult::kClosed) {
        ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, state.pes[index].socket.get(), nullptr);
        return;  // the pidfd tells us when the process is gone
      }
      NodeMessage reply{};
      reply.kind = NodeMessageKind::kReply;
      ControlRequest request{};
      std::lock_guard lock(state.mutex);
      if (result == RecvResult::kMalformed || n != sizeof(request)) {
        ++state.stats.malformed_requests;
        reply.status = Status::kInvalidArgument;
      } else {
        std::memcpy(&request, buffer.data(), sizeof(request));
        reply.request_id = request.request_id;
        const bool known = request.magic == kControlMagic && request.op >= ControlOp::kConfigSend &&
                           request.op < ControlOp::kCount;
        if (!known) ++state.stats.malformed_requests;
        PeId launched = 0;
        reply.status =
            known ? state.handle_request(index, request, updates, launched) : Status::kInvalidArgument;
        reply.pe = launched;
      }
      state.deliver(updates);
      send_with_fds(state.pes[index].socket.get(), std::as_bytes(std::span(&reply, 1)), {});
    }
  }

  void handle_exit(std::uint32_t index) {
    std::lock_guard lock(state.mutex);
    auto& p = state.pes[index];
    int status = 0;
    if (::waitpid(p.pid, &status, WNOHANG) != p.pid) return;
    p.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, p.pidfd.get(), nullptr);
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, p.socket.get(), nullptr);
    std::vector<Update> updates;
    state.retire_pe(index, updates);
    for (std::uint32_t k = 0; k < state.pes.size(); ++k) {  // kernels learn who is gone
      if (!state.pes[k].alive || !state.pes[k].privileged) continue;
      Update u{k, {}, {}, {}};
      u.message.kind = NodeMessageKind::kPeExited;
      u.message.pe = state.global_id(index);
      u.message.label = static_cast<std::uint64_t>(*p.exit_code);
      updates.push_back(std::move(u));
    }
    state.deliver(updates);
    state.pe_exited.notify_all();
  }

  void run() {
    std::array<epoll_event, 32> events{};
    auto last_event = std::chrono::steady_clock::now();
    detail::Spinner spinner;
    for (;;) {
      // Poll briefly after activity: a kernel configuring endpoints sends
      // requests back to back, and sleeping between them costs a VM exit each.
      const bool recent = std::chrono::steady_clock::now() - last_event < kSpinAfterRequest;
      const int n =
          ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), recent ? 0 : 100);
      if (n > 0) {
        last_event = std::chrono::steady_clock::now();
        spinner = detail::Spinner{};
      }
      for (int i = 0; i < n; ++i) {
        const auto tag = events[static_cast<std::size_t>(i)].data.u64;
        if (tag == kStopTag) return;
        const auto index = static_cast<std::uint32_t>(tag);
        if ((tag & kPidfdFlag) != 0) {
          handle_exit(index);
        } else {
          handle_socket(index);
        }
      }
      if (n <= 0 && recent) spinner.pause();
    }
  }
};

Node::Node(const NodeConfig& config) : state_(std::make_unique<NodeState>(config)) {
  if (config.pe_count == 0 || config.pe_count > kChannelsPerEndpoint) {
    throw std::invalid_argument("a node hosts 1 to 512 PEs");
  }
  if (config.endpoints_per_pe == 0 || config.endpoints_per_pe > 255) {
    throw std::invalid_argument("a PE has 1 to 255 endpoints");
  }
  if (std::uint32_t{config.first_pe} + config.pe_count > kGlobalMemoryPe) {
    throw std::invalid_argument("PE ids must stay below 0xffff");
  }
  auto& s = *state_;
  s.pes.resize(config.pe_count);
  s.service_doorbell = Doorbell::create(1);
  s.global_memory_fd = make_memory(config.global_memory_bytes, "vdtu-global-memory");
  s.global_memory = MappedRegion(s.global_memory_fd.get(), config.global_memory_bytes);
  s.stop_event = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  auto loop = std::make_shared<ControlLoop>(ControlLoop{s, UniqueFd(::epoll_create1(EPOLL_CLOEXEC))});
  if (!s.stop_event || !loop->epoll) throw_errno("epoll/eventfd");
  epoll_add(loop->epoll.get(), s.stop_event.get(), kStopTag);
  s.control_epoll = loop->epoll.get();
  if (!config.peers.empty()) s.bridge = std::make_unique<NodeBridge>(s);
  s.control_thread = std::thread([loop] { loop->run(); });
  s.memory_thread = std::thread([&s] { s.serve_memory(); });
  if (s.bridge) s.bridge->start();
}

Node::~Node() {
  auto& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    for (auto& p : s.pes) {
      if (p.pid > 0 && !p.exit_code) ::kill(p.pid, SIGKILL);
    }
  }
  wait_all_exited(std::chrono::seconds(10));  // the control thread reaps them
  if (s.bridge) {
    s.bridge->drain(std::chrono::seconds(1));  // the last words (a kernel's FINISHED) reach the peers
    s.bridge->stop();
  }
  s.stopping.store(true);
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(s.stop_event.get(), &one, sizeof(one));
  s.service_doorbell.wake();
  s.control_thread.join();
  s.memory_thread.join();
}

PeId Node::launch(const PeProgram& program) {
  std::lock_guard lock(state_->mutex);
  return state_->launch_locked(program);
}

PeId NodeState::launch_locked(const PeProgram& program) {
  auto& s = *this;
  std::uint32_t index = 0;
  while (index < s.pes.size() && s.pes[index].pid > 0) ++index;  // PE slots are not reused
  if (index == s.pes.size()) throw std::runtime_error("no free PE on this node");
  auto& p = s.pes[index];
  const auto endpoints = s.config.endpoints_per_pe;

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) throw_errno("socketpair");
  UniqueFd node_end(pair[0]);
  UniqueFd pe_end(pair[1]);
  const int big = 4 << 20;  // room for many updates before a slow PE reads them
  ::setsockopt(node_end.get(), SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));

  p.doorbell = Doorbell::create(endpoints);
  p.memory_fd = make_memory(s.config.pe_memory_bytes, "vdtu-pe-memory");
  p.memory = MappedRegion(p.memory_fd.get(), s.config.pe_memory_bytes);
  p.endpoints.assign(endpoints, NodeEndpoint{});
  p.privileged = program.privileged;
  p.vpe = static_cast<VpeId>(s.global_id(index));
  p.memory_requests = std::make_unique<SharedChannel>(SharedChannel::create(kMemoryChannelGeometry));
  p.memory_responses = std::make_unique<SharedChannel>(SharedChannel::create(kMemoryChannelGeometry));
  p.memory_requests->activate();
  p.memory_responses->activate();
  p.memory_in = std::make_unique<Consumer>(*p.memory_requests);
  p.memory_out = std::make_unique<Producer>(*p.memory_responses);

  NodeMessage hello{};
  hello.kind = NodeMessageKind::kHello;
  hello.pe = s.global_id(index);
  hello.vpe = p.vpe;
  hello.node_id = s.config.node_id;
  hello.privileged = program.privileged ? 1 : 0;
  hello.endpoints = endpoints;
  hello.local_memory_bytes = s.config.pe_memory_bytes;
  hello.channel = static_cast<std::uint16_t>(index);
  hello.slot_count = kMemoryChannelGeometry.slot_count;
  hello.slot_size = kMemoryChannelGeometry.slot_size;
  const std::array<int, 7> fds{p.doorbell.fd(),
                               p.memory_fd.get(),
                               p.memory_requests->memfd(),
                               p.memory_requests->eventfd(),
                               p.memory_responses->memfd(),
                               p.memory_responses->eventfd(),
                               s.service_doorbell.fd()};
  if (!send_with_fds(node_end.get(), std::as_bytes(std::span(&hello, 1)), fds)) throw_errno("hello");

  p.pid = spawn(program, pe_end.get());
  p.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0)));
  if (!p.pidfd) throw_errno("pidfd_open");
  p.socket = std::move(node_end);
  p.alive = true;
  p.memory_remote_pending = false;
  epoll_add(s.control_epoll, p.socket.get(), index);
  epoll_add(s.control_epoll, p.pidfd.get(), index | kPidfdFlag);
  return s.global_id(index);
}

bool Node::wait_all_exited(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mutex);
  const auto all_exited = [&] {
    return std::all_of(state_->pes.begin(), state_->pes.end(),
                       [](const PeRecord& p) { return p.pid <= 0 || p.exit_code.has_value(); });
  };
  return state_->pe_exited.wait_until(lock, detail::deadline_after(timeout), all_exited);
}

std::optional<int> Node::exit_code(PeId pe) const {
  std::lock_guard lock(state_->mutex);
  const std::uint32_t index = static_cast<std::uint16_t>(pe - state_->config.first_pe);
  return index < state_->pes.size() ? state_->pes[index].exit_code : std::nullopt;
}

pid_t Node::pid_of(PeId pe) const {
  std::lock_guard lock(state_->mutex);
  const std::uint32_t index = static_cast<std::uint16_t>(pe - state_->config.first_pe);
  return index < state_->pes.size() ? state_->pes[index].pid : -1;
}

NodeStats Node::stats() const {
  std::lock_guard lock(state_->mutex);
  auto st = state_->stats;
  if (state_->bridge) state_->bridge->add_stats(st);
  st.channels_alive = 0;
  for (const auto& p : state_->pes) {
    for (const auto& e : p.endpoints) {
      for (const auto& ch : e.inbound) st.channels_alive += ch ? 1 : 0;
    }
  }
  return st;
}

std::uint16_t Node::bridge_port() const { return state_->bridge ? state_->bridge->port() : 0; }

}  // namespace vdtu::dtu
