// The channel demo: a producer process attaches to a channel through its fds
// and streams messages to this process, which checks every one of them.
#include <fmt/core.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "demo.hpp"
#include "vdtu/channel.hpp"

namespace vdtu::cli {
namespace {

std::uint64_t pattern(std::uint64_t seq) { return seq * 0x9e3779b97f4a7c15ULL; }

int stream_from_child(const SharedChannel& ch, std::uint64_t count) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto mine =
        SharedChannel::attach(UniqueFd(::dup(ch.memfd())), UniqueFd(::dup(ch.eventfd())), ch.geometry());
    Producer producer(mine);
    for (std::uint64_t seq = 0; seq < count; ++seq) {
      MessageHeader h{};
      h.label = seq;
      const std::uint64_t body = pattern(seq);
      if (producer.send(h, std::as_bytes(std::span(&body, 1))) != Status::kOk) ::_exit(1);
    }
    ::_exit(0);
  }
  return pid;
}

bool check_stream(std::uint64_t count) {
  auto ch = SharedChannel::create({256, 64});
  ch.activate();
  const pid_t child = stream_from_child(ch, count);
  Consumer consumer(ch);
  const auto start = std::chrono::steady_clock::now();
  bool intact = true;
  for (std::uint64_t seq = 0; seq < count && intact; ++seq) {
    MessageView m;
    intact = consumer.wait_readable(WaitPolicy{}, std::chrono::seconds(10)) == Status::kOk &&
             consumer.try_fetch(m) == Status::kOk && m.header.label == seq && m.payload.size() == 8;
    std::uint64_t body = 0;
    if (intact) std::memcpy(&body, m.payload.data(), 8);
    intact = intact && body == pattern(seq) && consumer.ack() == Status::kOk;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int status = 0;
  ::waitpid(child, &status, 0);
  fmt::print("  {} messages between two processes in {:.3f} s ({:.1f} M/s)\n", count, secs,
             static_cast<double>(count) / secs / 1e6);
  return intact && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool check_termination() {
  auto ch = SharedChannel::create({4, 64});
  ch.activate();
  Producer producer(ch);
  Consumer consumer(ch);
  const bool queued = producer.try_send({}, {}) == Status::kOk;
  ch.terminate();
  MessageView m;
  return queued && producer.try_send({}, {}) == Status::kTerminated && consumer.try_fetch(m) == Status::kOk &&
         consumer.ack() == Status::kOk && consumer.try_fetch(m) == Status::kTerminated;
}

bool check_hostile_index() {
  auto ch = SharedChannel::create({4, 64});
  ch.activate();
  Consumer consumer(ch);
  MappedRegion raw(ch.memfd(), ch.geometry().total_bytes());
  // Slot 0 claims to hold message 4095 of a 4-slot ring (its sequence word
  // follows the 320-byte control block).
  const std::uint32_t bogus = 4096U;
  std::memcpy(raw.data() + 320, &bogus, sizeof(bogus));
  MessageView m;
  return consumer.try_fetch(m) == Status::kBroken;
}

}  // namespace

std::vector<DemoCheck> channel_checks(const DemoOptions& options) {
  return {
      {"channel: stream between processes arrives intact and in order",
       [count = options.messages] { return check_stream(count); }},
      {"channel: terminated channel refuses sends, drains queued", check_termination},
      {"channel: hostile slot sequence is detected, not trusted", check_hostile_index},
  };
}

}  // namespace vdtu::cli
