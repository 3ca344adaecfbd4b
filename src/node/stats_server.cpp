#include "stats_server.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "channel_tap.hpp"
#include "node_loop.hpp"
#include "node_snapshot.hpp"
#include "unix_stream.hpp"

namespace vdtu::dtu {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kMaxRequest = 64;
constexpr auto kRequestPatience = 1s;  // a client that says nothing for this long is dropped
constexpr auto kReplyPatience = 2s;    // a client that reads nothing for this long is dropped
constexpr auto kTapInterval = 200us;   // how often a trace looks at the channels
// How often it asks the node which channels exist: a channel made and gone
// within this is not seen (a binding used for a few messages, then revoked).
constexpr auto kTapRefresh = 5ms;
constexpr std::size_t kTraceBuffer = std::size_t{1} << 20;

std::string link_of(const std::string& path) {
  std::array<char, 256> buf{};
  const auto n = ::readlink(path.c_str(), buf.data(), buf.size() - 1);
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string{};
}

// Why `client` may not read the node's stats (nothing if it may): it must be
// the node's uid in the node's user namespace. A PE is another uid (uid
// sandbox) or in a user namespace of its own whose /proc entry the node
// cannot even read (userns sandbox: the PE is not dumpable).
std::optional<std::string> refusal(int client) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "no peer credentials";
  if (cred.uid != ::geteuid()) return "not the node's user";
  const auto ours = link_of("/proc/self/ns/user");
  const auto theirs = link_of("/proc/" + std::to_string(cred.pid) + "/ns/user");
  if (ours.empty() || theirs != ours) return "not in the node's user namespace";
  return std::nullopt;
}

void say(int client, const std::string& text) {
  (void)write_all(client, std::as_bytes(std::span(text)), Clock::now() + kReplyPatience);
}

std::optional<std::size_t> snaplen_of(const std::string& request) {
  constexpr std::string_view kTrace = "trace ";
  if (request.rfind(kTrace, 0) != 0) return std::nullopt;
  std::size_t n = 0;
  const auto* first = request.data() + kTrace.size();
  const auto* last = request.data() + request.size();
  const auto [end, ec] = std::from_chars(first, last, n);
  if (ec != std::errc{} || end != last || n > kTraceMaxSnap) return std::nullopt;
  return n;
}

}  // namespace

StatsServer::StatsServer(std::filesystem::path path, NodeLoop& loop)
    : path_(std::move(path)),
      loop_(loop),
      listener_(listen_unix(path_)),
      stop_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!stop_) throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::thread([this] { run(); });
}

StatsServer::~StatsServer() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_.get(), &one, sizeof(one));
  thread_.join();
  ::unlink(path_.c_str());
}

void StatsServer::run() {
  for (;;) {
    std::array<pollfd, 2> p{{{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}}};
    if (::poll(p.data(), p.size(), -1) < 0 && errno != EINTR) return;
    if ((p[1].revents & POLLIN) != 0) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (client) serve(std::move(client), true);
  }
}

void StatsServer::serve(UniqueFd client, bool trace_allowed) {
  if (const auto why = refusal(client.get())) {
    spdlog::warn("node stats socket {}: refused a client: {}", path_.string(), *why);
    say(client.get(), "refused: " + *why + "\n");
    return;
  }
  std::string request;
  if (!read_line(client.get(), request, kMaxRequest, Clock::now() + kRequestPatience)) return;
  if (request == "text" || request == "json") {
    snapshot_reply(client.get(), request == "json");
  } else if (const auto snaplen = snaplen_of(request)) {
    if (trace_allowed) {
      trace(client.get(), *snaplen);
    } else {
      say(client.get(), "refused: a trace is running\n");
    }
  } else {
    say(client.get(), "refused: unknown request (text, json, trace SNAPLEN)\n");
  }
}

void StatsServer::snapshot_reply(int client, bool json) {
  // The snapshot runs on the node's thread: at most kSnapshotsPerSecond.
  const auto earliest = last_snapshot_ + std::chrono::milliseconds(1000 / kSnapshotsPerSecond);
  if (Clock::now() < earliest) std::this_thread::sleep_until(earliest);
  last_snapshot_ = Clock::now();
  const auto snapshot = loop_.call([](NodeCore& c) { return c.snapshot(); });
  say(client, json ? render_json(snapshot) : render_text(snapshot));
}

void StatsServer::trace(int client, std::size_t snaplen) {
  const auto node = loop_.call([](NodeCore& c) { return c.config().node_id; });
  ChannelTap tap(node, snaplen, kTraceBuffer);
  spdlog::info("node {}: trace started ({} payload bytes per message)", node, snaplen);
  auto refreshed = Clock::time_point{};
  bool reading = true;  // the client has not shut its side yet
  while (reading) {
    const auto now = Clock::now();
    if (now - refreshed >= kTapRefresh) {
      // Channels that appear after the first look were made during the trace.
      tap.set_points(loop_.call([](NodeCore& c) { return c.tap_points(); }),
                     refreshed != Clock::time_point{});
      refreshed = now;
    }
    tap.poll();
    const auto pending = tap.pending();
    if (!pending.empty()) {
      const auto n = ::send(client, pending.data(), pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) tap.consume(static_cast<std::size_t>(n));
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
    }
    std::array<pollfd, 3> p{{{client, POLLIN, 0}, {stop_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}}};
    const timespec wait{0, std::chrono::duration_cast<std::chrono::nanoseconds>(kTapInterval).count()};
    if (::ppoll(p.data(), p.size(), &wait, nullptr) < 0 && errno != EINTR) return;
    if ((p[1].revents & POLLIN) != 0) break;  // the node ends: say so below
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      std::array<char, 16> junk{};
      const auto n = ::recv(client, junk.data(), junk.size(), MSG_DONTWAIT);
      if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) reading = false;
    }
    if ((p[2].revents & POLLIN) != 0) {
      UniqueFd other(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (other) serve(std::move(other), false);
    }
  }
  // What is buffered, then the end marker and the counters.
  const auto& counted = tap.counters();
  spdlog::info("node {}: trace ended: {} messages captured, {} missed, {} dropped", node, counted.captured,
               counted.missed, counted.dropped);
  const auto deadline = Clock::now() + kReplyPatience;
  if (!write_all(client, tap.pending(), deadline)) return;
  const TraceStreamPrefix end{0, 0};
  const auto& c = tap.counters();
  const std::array<std::uint64_t, 3> counters{c.captured, c.missed, c.dropped};
  if (write_all(client, std::as_bytes(std::span(&end, 1)), deadline))
    (void)write_all(client, std::as_bytes(std::span(counters)), deadline);
}

}  // namespace vdtu::dtu
