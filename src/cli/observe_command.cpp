#include "observe_command.hpp"

#include <fmt/core.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

#include "common/stop_signals.hpp"
#include "node/trace_record.hpp"
#include "node/unix_stream.hpp"
#include "pcapng_writer.hpp"
#include "vdtu/message_header.hpp"

namespace vdtu::cli {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kAnswerPatience = 5s;
constexpr std::size_t kMaxRecord = sizeof(dtu::TraceRecordHeader) + kHeaderSize + dtu::kTraceMaxSnap;
constexpr std::string_view kRefused = "refused: ";

void send_request(int fd, const std::string& request) {
  const auto line = request + "\n";
  if (!dtu::write_all(fd, std::as_bytes(std::span(line)), Clock::now() + kAnswerPatience))
    throw std::runtime_error("the node did not take the request");
}

// The node's whole answer (it closes the connection after a snapshot).
std::string read_answer(int fd) {
  std::string out;
  const auto deadline = Clock::now() + kAnswerPatience;
  std::array<char, 4096> buf{};
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      throw std::runtime_error("the node did not answer in time");
    const auto n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) throw std::runtime_error("reading the node's answer failed");
    if (n == 0) break;
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  if (out.rfind(kRefused, 0) == 0) {
    throw std::runtime_error(fmt::format("the node {}", out.substr(0, out.find('\n'))));
  }
  if (out.empty()) throw std::runtime_error("the node closed the connection without an answer");
  return out;
}

std::string snapshot(const std::string& path, bool json) {
  auto fd = dtu::connect_unix(path);
  send_request(fd.get(), json ? "json" : "text");
  return read_answer(fd.get());
}

}  // namespace

int run_stat(const StatOptions& options) {
  if (options.watch_seconds <= 0) {
    fmt::print("{}", snapshot(options.socket_path, options.json));
    return 0;
  }
  StopSignals signals;
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.watch_seconds));
  const bool terminal = ::isatty(STDOUT_FILENO) == 1 && !options.json;
  for (;;) {
    const auto text = snapshot(options.socket_path, options.json);
    // Like top: on a terminal the screen is redrawn; otherwise (and with
    // --json: one object per line) each snapshot follows the last.
    if (terminal) fmt::print("\x1b[H\x1b[2J");
    fmt::print("{}", text);
    (void)std::fflush(stdout);
    pollfd p{signals.fd(), POLLIN, 0};
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(interval).count();
    if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(ms, 1))) > 0 && signals.take() != 0) return 0;
  }
}

int run_trace(const TraceOptions& options) {
  StopSignals signals;
  auto fd = dtu::connect_unix(options.socket_path);
  send_request(fd.get(), fmt::format("trace {}", options.snaplen));
  PcapngWriter out(options.output, dtu::kTraceLinkType,
                   static_cast<std::uint32_t>(sizeof(dtu::TraceRecordHeader) + kHeaderSize + options.snaplen),
                   options.socket_path);
  const std::optional<Clock::time_point> until =
      options.duration_seconds > 0
          ? std::optional(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(options.duration_seconds)))
          : std::nullopt;
  bool asked_to_end = false;
  bool checked_refusal = false;
  std::vector<std::byte> record;
  for (;;) {
    // Wait for the next record, a stop signal or the end of the duration;
    // then tell the node (shut our side) and read until its end marker.
    if (!asked_to_end) {
      std::array<pollfd, 2> p{{{fd.get(), POLLIN, 0}, {signals.fd(), POLLIN, 0}}};
      int wait_ms = 100;
      if (until) {
        wait_ms = static_cast<int>(std::clamp<std::int64_t>(
            std::chrono::ceil<std::chrono::milliseconds>(*until - Clock::now()).count(), 0, 100));
      }
      (void)::poll(p.data(), p.size(), wait_ms);
      const bool stop =
          ((p[1].revents & POLLIN) != 0 && signals.take() != 0) || (until && Clock::now() >= *until);
      if (stop) {
        ::shutdown(fd.get(), SHUT_WR);
        asked_to_end = true;
      }
      if ((p[0].revents & (POLLIN | POLLHUP)) == 0) continue;
    }
    if (!checked_refusal) {  // a refusal is a line of text instead of records
      std::array<char, kRefused.size()> head{};
      const auto n = ::recv(fd.get(), head.data(), head.size(), MSG_PEEK);
      if (n > 0 && std::string_view(head.data(), static_cast<std::size_t>(n)) == kRefused)
        read_answer(fd.get());
      checked_refusal = true;
    }
    dtu::TraceStreamPrefix prefix{};
    const auto deadline = Clock::now() + kAnswerPatience;
    if (!dtu::read_exact(fd.get(), std::as_writable_bytes(std::span(&prefix, 1)), deadline)) {
      // A refusal is text; anything else means the node went away.
      throw std::runtime_error(out.packets() == 0 ? "the node refused the trace or ended"
                                                  : "the node ended before the trace did");
    }
    if (prefix.size == 0) {
      std::array<std::uint64_t, 3> counters{};
      (void)dtu::read_exact(fd.get(), std::as_writable_bytes(std::span(counters)), deadline);
      out.close();
      fmt::print(
          "trace: {} messages captured into {}; missed {} (overwritten before the tap looked), dropped {} "
          "(buffer full)\n",
          counters[0], options.output, counters[1], counters[2]);
      return 0;
    }
    if (prefix.size > kMaxRecord || prefix.size < sizeof(dtu::TraceRecordHeader))
      throw std::runtime_error(fmt::format("the node sent a record of {} bytes", prefix.size));
    record.resize(prefix.size);
    if (!dtu::read_exact(fd.get(), record, deadline)) throw std::runtime_error("the node ended mid-record");
    dtu::TraceRecordHeader h{};
    std::memcpy(&h, record.data(), sizeof(h));
    out.write(prefix.time_ns, record, static_cast<std::uint32_t>(sizeof(h) + h.length));
  }
}

}  // namespace vdtu::cli
