// `vdtu bench channel`: round trips and throughput of the shared-memory
// channel between two processes, next to the cache-line, pipe and Unix socket
// baselines measured in the same run.
#include <fmt/core.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <vector>

#include "baselines.hpp"
#include "pinned_child.hpp"
#include "suites.hpp"
#include "vdtu/channel.hpp"

namespace vdtu::bench {
namespace {

constexpr std::size_t kSmallPayload = 64;
// The most a slot's first cache line holds next to its sequence word and the
// 25-byte header: such a message crosses as one line.
constexpr std::size_t kOneLinePayload = 64 - 4 - kHeaderSize;
constexpr std::size_t kBatch = 32;

SharedChannel make_active(ChannelGeometry g) {
  auto ch = SharedChannel::create(g);
  ch.activate();
  return ch;
}

SharedChannel attach_copy(const SharedChannel& ch) {
  return SharedChannel::attach(UniqueFd(::dup(ch.memfd())), UniqueFd(::dup(ch.eventfd())), ch.geometry());
}

// Request/response over two channels; the child echoes until the request
// channel is terminated.
std::vector<double> channel_roundtrips(WaitPolicy policy, std::size_t iterations,
                                       std::size_t payload_bytes = kSmallPayload) {
  const ChannelGeometry g{64, 512};
  auto request = make_active(g);
  auto response = make_active(g);
  PinnedChild child([&] {
    auto rx_channel = attach_copy(request);
    auto tx_channel = attach_copy(response);
    Consumer rx(rx_channel);
    Producer tx(tx_channel);
    for (;;) {
      const auto st = rx.wait_readable(policy);
      if (st == Status::kTerminated) return 0;
      if (st != Status::kOk) return 1;
      MessageView m;
      rx.try_fetch(m);
      if (tx.send(m.header, m.payload, policy) != Status::kOk) return 2;
      rx.ack();
    }
  });
  Producer tx(request);
  Consumer rx(response);
  const std::vector<std::byte> payload(payload_bytes);
  auto samples = time_each(iterations, iterations / 10, [&] {
    tx.send({}, payload, policy);
    rx.wait_readable(policy);
    MessageView m;
    rx.try_fetch(m);
    rx.ack();
  });
  request.terminate();
  child.join();
  return samples;
}

// Messages per second from a child producer to this process's consumer.
double channel_throughput(std::size_t payload_bytes, bool batched, std::uint64_t count) {
  const ChannelGeometry g{1024, payload_bytes <= 64 ? 128U : 1024U};
  auto ch = make_active(g);
  PinnedChild child([&] {
    auto mine = attach_copy(ch);
    Producer producer(mine);
    std::vector<std::byte> payload(payload_bytes);
    std::array<OutgoingMessage, kBatch> batch{};
    for (auto& m : batch) m.payload = payload;
    const auto policy = WaitPolicy::poll_only();
    for (std::uint64_t sent = 0; sent < count;) {
      if (batched) {
        std::uint32_t n = 0;
        const auto left = std::min<std::uint64_t>(kBatch, count - sent);
        const auto st = producer.try_send_batch(std::span(batch).first(left), n);
        if (st == Status::kFull) {
          producer.wait_writable(policy);
        } else if (st != Status::kOk) {
          return 1;
        }
        sent += n;
      } else {
        if (producer.send({}, payload, policy) != Status::kOk) return 1;
        ++sent;
      }
    }
    return 0;
  });
  Consumer consumer(ch);
  std::array<MessageView, kBatch> batch{};
  const std::size_t want = batched ? kBatch : 1;
  std::uint64_t received = 0;
  std::chrono::steady_clock::time_point first;
  while (received < count) {
    consumer.wait_readable(WaitPolicy::poll_only());
    std::uint32_t got = 0;
    consumer.try_fetch_batch(std::span(batch).first(want), got);
    if (received == 0 && got > 0) first = std::chrono::steady_clock::now();
    consumer.ack(got);
    received += got;
  }
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - first).count();
  child.join();
  return static_cast<double>(count - 1) / seconds;
}

}  // namespace

void run_channel_suite(Reporter& reporter, const SuiteOptions& options) {
  const std::size_t rtts = options.quick ? 2'000 : 100'000;
  const std::size_t sleepy_rtts = options.quick ? 200 : 5'000;
  const std::uint64_t messages = options.quick ? 100'000 : 4'000'000;
  const int runs = options.quick ? 2 : 7;
  const std::string suite = "channel";

  reporter.note("two processes pinned to CPUs 0 and 1; round trips carry 64-byte payloads");
  reporter.progress("round trips and their baselines");
  // The floor of a polled round trip: one line bouncing between the same two
  // pinned CPUs.
  const auto floor = latency_result(suite, "baseline_cacheline_pingpong_rtt", cacheline_pingpong_ns(rtts));
  reporter.add(floor);
  reporter.add(latency_result(suite, "baseline_pipe_rtt", pipe_roundtrip_ns(sleepy_rtts, kSmallPayload)));
  reporter.add(
      latency_result(suite, "baseline_unix_dgram_rtt", unix_dgram_roundtrip_ns(sleepy_rtts, kSmallPayload)));
  reporter.add(against(
      latency_result(suite, "rtt_polling", channel_roundtrips(WaitPolicy::poll_only(), rtts)), floor));
  reporter.add(against(latency_result(suite, "rtt_polling_one_line_35B",
                                      channel_roundtrips(WaitPolicy::poll_only(), rtts, kOneLinePayload)),
                       floor));
  reporter.add(against(
      latency_result(suite, "rtt_adaptive_spin_then_sleep", channel_roundtrips(WaitPolicy{}, rtts)), floor));
  reporter.add(latency_result(suite, "rtt_sleep_every_time",
                              channel_roundtrips(WaitPolicy::sleep_at_once(), sleepy_rtts)));

  struct Case {
    const char* name;
    std::size_t bytes;
    bool batched;
  };
  for (const Case c :
       {Case{"throughput_64B_single", 64, false}, Case{"throughput_64B_batch32", 64, true},
        Case{"throughput_512B_single", 512, false}, Case{"throughput_512B_batch32", 512, true}}) {
    std::vector<double> rates;
    rates.reserve(static_cast<std::size_t>(runs));
    for (int r = 0; r < runs; ++r) {
      reporter.progress(fmt::format("{}, run {} of {}", c.name, r + 1, runs));
      rates.push_back(channel_throughput(c.bytes, c.batched, messages));
    }
    reporter.add(rate_result(suite, c.name, "Mmsg/s", 1e-6, std::move(rates)));
  }
}

}  // namespace vdtu::bench
