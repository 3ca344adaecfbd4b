#include "virtual_switch.hpp"
#include "common/log.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "channel/spin_then_sleep.hpp"
#include "packet_uplink.hpp"
#include "shm_port.hpp"
#include "switch_report.hpp"
#include "unix_message.hpp"
#include "vhost/vhost_socket.hpp"
#include "vhost/vhost_user_port.hpp"

namespace vdtu::net {
namespace {

using Clock = std::chrono::steady_clock;

// What an epoll event is about: kind in the high half, fd or port id below.
enum class Tag : std::uint32_t {
  kListener = 1,
  kStop,
  kExternalStop,
  kConnection,
  kPortControl,
  kPortWakeup,
  kVhostListener,
  kVhostControl
};
constexpr std::uint64_t tag(Tag kind, std::uint32_t value) {
  return (static_cast<std::uint64_t>(kind) << 32U) | value;
}
constexpr Tag kind_of(std::uint64_t t) { return static_cast<Tag>(t >> 32U); }
constexpr std::uint32_t value_of(std::uint64_t t) { return static_cast<std::uint32_t>(t); }

constexpr std::size_t kMaxWaitingConnections = 16;
constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr auto kServiceEvery = std::chrono::milliseconds(1);      // while busy
constexpr auto kIdleSleep = std::chrono::milliseconds(1000);      // aging and timeouts still run
constexpr auto kReconnectEvery = std::chrono::milliseconds(500);  // vhost-user client mode

void log_line(const std::string& line) { spdlog::info("switch: {}", line); }

std::string peer_of(int fd) {
  ucred cred{};
  socklen_t size = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return "unknown peer";
  return fmt::format("pid {}", cred.pid);
}

}  // namespace

VirtualSwitch::VirtualSwitch(SwitchConfig config) : config_(std::move(config)), engine_(config_.engine) {
  config_.validate();
  init_logging();
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  stop_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_event_) throw std::system_error(errno, std::generic_category(), "eventfd");
  watch(stop_event_.get(), tag(Tag::kStop, 0));

  for (const auto& p : config_.ports) {
    named_[p.name] = engine_.reserve({p.name, p.mtu != 0 ? p.mtu : config_.default_mtu, p.allowed_sources});
  }
  for (const auto& u : config_.uplinks) {
    auto uplink = std::make_unique<PacketUplink>(u.interface, u.mtu, u.ring_frames);
    const auto id = engine_.reserve({u.name, uplink->mtu(), u.allowed_sources});
    named_[u.name] = id;
    log_line(fmt::format("port {} ({}) is uplink {} (mtu {})", id, u.name, u.interface, uplink->mtu()));
    engine_.attach(id, std::move(uplink));
  }
  vhost_.reserve(config_.vhost_ports.size());
  for (const auto& v : config_.vhost_ports) {
    VhostEndpoint endpoint;
    endpoint.id = engine_.reserve({v.name, v.mtu != 0 ? v.mtu : config_.default_mtu, v.allowed_sources});
    endpoint.config = v;
    named_[v.name] = endpoint.id;
    if (!v.client) {
      endpoint.listener = vhost::listen_stream(v.path);
      watch(endpoint.listener.get(), tag(Tag::kVhostListener, static_cast<std::uint32_t>(vhost_.size())));
    }
    log_line(fmt::format("port {} ({}) is vhost-user {} ({})", endpoint.id, v.name, v.path,
                         v.client ? "client: connects" : "server: listens"));
    vhost_.push_back(std::move(endpoint));
  }
  for (const auto& p : config_.ports) {
    if (p.mac && !engine_.add_static(*p.mac, 0, named_.at(p.name))) {
      throw std::invalid_argument("static address " + p.mac->to_string() + " given to two ports");
    }
  }
  for (const auto& s : config_.static_entries) {
    if (!engine_.add_static(s.mac, s.vlan, named_.at(s.port))) {
      throw std::invalid_argument("static address " + s.mac.to_string() + " given to two ports");
    }
  }
  listener_ = listen_unix(config_.socket_path, 64);
  watch(listener_.get(), tag(Tag::kListener, 0));
}

VirtualSwitch::~VirtualSwitch() {
  if (listener_) ::unlink(config_.socket_path.c_str());
  for (const auto& v : vhost_) {
    if (v.listener) ::unlink(v.config.path.c_str());
  }
}

void VirtualSwitch::request_stop() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(stop_event_.get(), &one, sizeof(one));
}

void VirtualSwitch::watch(int fd, std::uint64_t t) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = t;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }
}

void VirtualSwitch::unwatch(int fd) { ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

// Busy-polls while frames flow and for poll_window after the last one, with
// a pause per idle round but no sched_yield: a yield hands the CPU to any
// other runnable task for a time slice, during which an uplink's ring can
// overflow. The window bounds the polling; after it the switch sleeps.
void VirtualSwitch::run(int stop_fd) {
  if (stop_fd >= 0) watch(stop_fd, tag(Tag::kExternalStop, 0));
  auto last_work = Clock::now();
  auto last_service = last_work;
  while (!stopping_) {
    const auto now = Clock::now();
    if (engine_.poll(now) > 0) last_work = now;
    if (engine_.has_failed_ports()) remove_failed_ports();
    if (now - last_service >= kServiceEvery) {
      service(std::chrono::milliseconds(0));
      last_service = now;
    }
    if (now - last_work < config_.poll_window) {
      detail::cpu_relax();
      continue;
    }
    // Idle: ask every port for a wake-up, then sleep (unless one has work).
    service(arm_all() ? kIdleSleep : std::chrono::milliseconds(0));
    disarm_all();
    last_work = last_service = Clock::now();  // poll a while after any wake-up
  }
  if (stop_fd >= 0) unwatch(stop_fd);
  stopping_ = false;
}

// Ports' wake-up fds are in the epoll set only while the switch sleeps: a
// registered packet socket costs the kernel a wait-queue wake-up (a locked,
// interrupts-off section, dear in a VM) for every frame received and every
// frame sent, which the busy loop does not need.
bool VirtualSwitch::arm_all() {
  bool all = true;
  for (const auto id : engine_.attached()) {
    auto* port = engine_.port(id);
    if (!port->arm_wakeup()) {
      all = false;
      continue;
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = tag(Tag::kPortWakeup, id);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, port->wakeup_fd(), &event) != 0) {
      all = false;  // cannot be woken by this port: keep polling instead of sleeping
      continue;
    }
    sleeping_.push_back(id);
  }
  return all;
}

void VirtualSwitch::disarm_all() {
  for (const auto id : sleeping_) unwatch(engine_.port(id)->wakeup_fd());
  sleeping_.clear();
  for (const auto id : engine_.attached()) engine_.port(id)->disarm_wakeup();
}

void VirtualSwitch::service(std::chrono::milliseconds timeout) {
  std::array<epoll_event, 32> events{};
  const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                             static_cast<int>(timeout.count()));
  for (const auto id : engine_.attached()) engine_.port(id)->refresh_counters();  // before a report goes out
  for (int i = 0; i < n; ++i) dispatch(events[static_cast<std::size_t>(i)].data.u64);
  if (!connections_.empty()) drop_stale_connections();
  if (engine_.has_failed_ports()) remove_failed_ports();
  connect_vhost_clients();
}

void VirtualSwitch::dispatch(std::uint64_t t) {
  switch (kind_of(t)) {
    case Tag::kListener: accept_connections(); return;
    case Tag::kStop:
    case Tag::kExternalStop: stopping_ = true; return;
    case Tag::kConnection: serve_request(static_cast<int>(value_of(t))); return;
    case Tag::kPortControl: port_connection_event(static_cast<PortId>(value_of(t))); return;
    case Tag::kVhostListener: accept_vhost(value_of(t)); return;
    case Tag::kVhostControl: vhost_control_event(static_cast<PortId>(value_of(t))); return;
    case Tag::kPortWakeup:
      // The forwarding loop finds the frames; clearing the wake-up keeps a
      // peer that rings without sending from keeping epoll readable.
      if (auto* port = engine_.port(static_cast<PortId>(value_of(t)))) port->disarm_wakeup();
      return;
  }
}

void VirtualSwitch::accept_connections() {
  for (;;) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) return;
    if (connections_.size() >= kMaxWaitingConnections) {
      ++engine_.counters().clients_refused;
      continue;  // closed at once: too many clients that have not said what they want
    }
    const int raw = fd.get();
    watch(raw, tag(Tag::kConnection, static_cast<std::uint32_t>(raw)));
    connections_[raw] = Connection{std::move(fd), Clock::now()};
  }
}

void VirtualSwitch::drop_stale_connections() {
  const auto now = Clock::now();
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (now - it->second.since > kRequestTimeout) {
      unwatch(it->first);
      ++engine_.counters().clients_refused;
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void VirtualSwitch::refuse(int fd, const std::string& why) {
  wire::ConnectReply reply;
  wire::put_text(reply.error, why);
  send_message(fd, std::as_bytes(std::span(&reply, 1)));
  ++engine_.counters().clients_refused;
}

// The request is untrusted: its size, magic, version, kind and name are all
// checked before anything is done for it.
void VirtualSwitch::serve_request(int fd) {
  auto entry = connections_.find(fd);
  if (entry == connections_.end()) return;
  wire::Request request;
  std::size_t size = 0;
  std::vector<UniqueFd> fds;
  const auto got = receive_message(fd, std::as_writable_bytes(std::span(&request, 1)), size, fds);
  if (got == Received::kWouldBlock) return;
  auto connection = std::move(entry->second.fd);
  unwatch(fd);
  connections_.erase(entry);
  if (got != Received::kMessage || size != sizeof(request) || !fds.empty() || request.magic != wire::kMagic ||
      request.version != wire::kVersion) {
    refuse(connection.get(), "malformed request");
    return;
  }
  if (request.kind == wire::RequestKind::kStatistics) {
    const bool json = request.format == wire::ReportFormat::kJson;
    send_report(connection.get(), json ? wire::ReportFormat::kJson : wire::ReportFormat::kText);
    return;
  }
  if (request.kind != wire::RequestKind::kConnectPort) {
    refuse(connection.get(), "unknown request");
    return;
  }
  connect_port(std::move(connection), request);
}

void VirtualSwitch::send_report(int fd, wire::ReportFormat format) const {
  const auto text = report(format);
  for (std::size_t at = 0; at < text.size(); at += wire::kChunkBytes) {
    const auto piece = std::string_view(text).substr(at, wire::kChunkBytes);
    if (!send_message(fd, std::as_bytes(std::span(piece.data(), piece.size())))) return;
  }
}

void VirtualSwitch::connect_port(UniqueFd connection, const wire::Request& request) {
  const auto name = wire::get_text(request.name);
  if (!name || (!name->empty() && !wire::valid_port_name(*name))) {
    refuse(connection.get(), "malformed port name");
    return;
  }
  const bool anonymous = name->empty();
  PortId id = 0;
  if (anonymous) {
    if (!config_.anonymous_ports) return refuse(connection.get(), "this switch has only named ports");
    try {
      id = engine_.reserve({"", config_.default_mtu, {}});
    } catch (const std::runtime_error& e) {
      return refuse(connection.get(), e.what());
    }
    anonymous_.push_back(id);
  } else {
    const auto it = named_.find(*name);
    if (it == named_.end()) return refuse(connection.get(), "no port named '" + *name + "'");
    id = it->second;
    if (engine_.port(id) != nullptr) return refuse(connection.get(), "port '" + *name + "' is in use");
  }
  const auto& settings = engine_.settings(id);
  const auto peer = peer_of(connection.get());
  std::unique_ptr<ShmPort> port;
  try {
    port = std::make_unique<ShmPort>(settings.mtu, config_.ring_slots, std::move(connection), peer);
  } catch (const std::exception& e) {
    log_line(fmt::format("cannot make a port for {}: {}", peer, e.what()));
    if (anonymous) {
      engine_.unreserve(id);
      anonymous_.pop_back();
    }
    return;
  }
  wire::ConnectReply reply;
  reply.accepted = 1;
  reply.port_id = id;
  reply.mtu = settings.mtu;
  reply.to_switch_slots = reply.from_switch_slots = port->geometry().slot_count;
  reply.to_switch_slot_size = reply.from_switch_slot_size = port->geometry().slot_size;
  wire::put_text(reply.name, anonymous ? fmt::format("port{}", id) : *name);
  for (const auto& p : config_.ports) {
    if (p.name == *name && p.mac) {
      reply.mac = p.mac->octets;
      reply.has_mac = 1;
    }
  }
  const auto fds = port->client_fds();
  if (!send_message(port->control_fd(), std::as_bytes(std::span(&reply, 1)), fds)) {
    log_line(fmt::format("{} left before its port was ready", peer));
    if (anonymous) {
      engine_.unreserve(id);
      anonymous_.pop_back();
    }
    return;
  }
  watch(port->control_fd(), tag(Tag::kPortControl, id));
  log_line(
      fmt::format("port {} ({}) connected: {}", id, anonymous ? fmt::format("port{}", id) : *name, peer));
  engine_.attach(id, std::move(port));
}

// After its request, a client has nothing more to say: end of file means it
// left; anything else breaks the protocol.
void VirtualSwitch::port_connection_event(PortId id) {
  auto* port = dynamic_cast<ShmPort*>(engine_.port(id));
  if (port == nullptr) return;
  std::array<std::byte, 64> junk{};
  std::size_t size = 0;
  std::vector<UniqueFd> fds;
  const auto got = receive_message(port->control_fd(), junk, size, fds);
  if (got == Received::kWouldBlock) return;
  unwatch(port->control_fd());
  if (got == Received::kClosed) {
    port->peer_left();  // what it queued is still forwarded
  } else {
    port->shut_down("unexpected message on its connection");
  }
}

void VirtualSwitch::remove_failed_ports() {
  for (const auto id : engine_.failed_ports()) remove_port(id);
}

void VirtualSwitch::remove_port(PortId id) {
  auto* port = engine_.port(id);
  if (port == nullptr) return;
  const auto failure = port->failure().value_or(PortFailure{"removed", false});
  const auto& name = engine_.settings(id).name;
  const auto label = name.empty() ? fmt::format("port{}", id) : name;
  if (failure.misbehaved) {
    log_line(fmt::format("port {} ({}, {}) shut down: {}", id, label, port->peer(), failure.reason));
    ++engine_.counters().ports_shut_down;
  } else {
    log_line(fmt::format("port {} ({}, {}) closed: {}", id, label, port->peer(), failure.reason));
    ++engine_.counters().ports_closed;
  }
  // Before the fd closes: a client holds the same eventfd, so closing ours
  // would leave its registration in the epoll set.
  if (const auto at = std::find(sleeping_.begin(), sleeping_.end(), id); at != sleeping_.end()) {
    unwatch(port->wakeup_fd());
    sleeping_.erase(at);
  }
  if (auto* shm = dynamic_cast<ShmPort*>(port)) unwatch(shm->control_fd());
  if (auto* vhost = dynamic_cast<vhost::VhostUserPort*>(port)) unwatch(vhost->control_fd());
  engine_.detach(id);
  const auto it = std::find(anonymous_.begin(), anonymous_.end(), id);
  if (it != anonymous_.end()) {
    anonymous_.erase(it);
    engine_.unreserve(id);
  }
}

void VirtualSwitch::accept_vhost(std::size_t endpoint) {
  auto& v = vhost_.at(endpoint);
  for (;;) {
    UniqueFd fd(::accept4(v.listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) return;
    // The old frontend may have hung up just before (a restarted QEMU):
    // read its connection first so its port is gone before deciding.
    if (auto* old = dynamic_cast<vhost::VhostUserPort*>(engine_.port(v.id))) {
      old->serve_control();
      if (old->failure()) remove_port(v.id);
    }
    if (engine_.port(v.id) != nullptr) {
      log_line(fmt::format("port {} ({}): refused a second vhost-user frontend ({})", v.id, v.config.name,
                           peer_of(fd.get())));
      ++engine_.counters().clients_refused;
      continue;
    }
    attach_vhost(v, std::move(fd));
  }
}

// Client mode: (re)connects to the frontend's socket while the port is free.
void VirtualSwitch::connect_vhost_clients() {
  const auto now = Clock::now();
  for (auto& v : vhost_) {
    if (!v.config.client || engine_.port(v.id) != nullptr || now < v.next_attempt) continue;
    v.next_attempt = now + kReconnectEvery;
    if (auto fd = vhost::try_connect_stream(v.config.path)) attach_vhost(v, std::move(fd));
  }
}

void VirtualSwitch::attach_vhost(VhostEndpoint& endpoint, UniqueFd connection) {
  const auto peer = fmt::format("vhost-user {}", peer_of(connection.get()));
  auto port =
      std::make_unique<vhost::VhostUserPort>(std::move(connection), engine_.settings(endpoint.id).mtu, peer);
  watch(port->control_fd(), tag(Tag::kVhostControl, endpoint.id));
  log_line(fmt::format("port {} ({}) connected: {}", endpoint.id, endpoint.config.name, peer));
  engine_.attach(endpoint.id, std::move(port));
}

void VirtualSwitch::vhost_control_event(PortId id) {
  if (auto* port = dynamic_cast<vhost::VhostUserPort*>(engine_.port(id))) port->serve_control();
}

std::string VirtualSwitch::report(wire::ReportFormat format) const { return render_report(engine_, format); }

}  // namespace vdtu::net
