// Two reliable links talk through a wire the fuzzer controls (it loses,
// duplicates, reorders and delays datagrams), while arbitrary datagrams and
// changed copies of real ones also reach link A: the frame decoder sees any
// header (magic, version, type, addressing, length, session, seq, ack,
// window) on any payload. Findings: any crash or sanitizer report; a
// datagram link A refuses that is not counted as malformed or stale (or one
// it takes that is); more in flight than the window; and, in inputs without
// injected datagrams, anything but exactly B's messages, in order, once each.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "bridge/reliable_link.hpp"

namespace {

using namespace vdtu;
using namespace vdtu::bridge;
using Clock = ReliableLink::Clock;

constexpr std::uint32_t kWindow = 8;

class Wire {
 public:
  void run(FuzzedDataProvider& in) {
    for (int op = 0; op < 400 && in.remaining_bytes() > 0; ++op) {
      switch (in.ConsumeIntegralInRange<int>(0, 7)) {
        case 0: send_from_b(in); break;
        case 1: a_.send(in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 40))); break;
        case 2: deliver(in); break;
        case 3: inject_raw(in); break;
        case 4: inject_changed(in); break;
        case 5: now_ += std::chrono::microseconds(in.ConsumeIntegralInRange<int>(0, 300'000)); break;
        default: poll(); break;
      }
      take();
      if (a_.in_flight() > kWindow || b_.in_flight() > kWindow) std::abort();
    }
    if (injected_) return;
    // Without injections, a lossless end delivers everything.
    for (int round = 0; round < 200 && (b_.in_flight() > 0 || !to_a_.empty() || !to_b_.empty()); ++round) {
      now_ += std::chrono::milliseconds(300);
      poll();
      while (!to_a_.empty() || !to_b_.empty()) {
        flush(to_a_, a_, true);
        flush(to_b_, b_, false);
        take();
      }
    }
    if (b_.in_flight() == 0 && next_expected_ != sent_by_b_) std::abort();
  }

 private:
  void send_from_b(FuzzedDataProvider& in) {
    std::vector<std::byte> m(sizeof(std::uint64_t) + in.ConsumeIntegralInRange<std::size_t>(0, 32));
    std::memcpy(m.data(), &sent_by_b_, sizeof(sent_by_b_));
    if (b_.send(m) == Status::kOk) ++sent_by_b_;
  }

  void poll() {
    a_.poll(now_, [&](std::span<const std::byte> d) { keep(to_b_, d); });
    b_.poll(now_, [&](std::span<const std::byte> d) { keep(to_a_, d); });
  }
  void keep(std::deque<std::vector<std::byte>>& queue, std::span<const std::byte> d) {
    if (queue.size() < 256) queue.emplace_back(d.begin(), d.end());
    if (seen_.size() < 64) seen_.emplace_back(d.begin(), d.end());
  }

  // The wire: one datagram in either direction, delivered, lost or repeated.
  void deliver(FuzzedDataProvider& in) {
    auto& queue = in.ConsumeBool() ? to_a_ : to_b_;
    if (queue.empty()) return;
    const auto i = in.ConsumeIntegralInRange<std::size_t>(0, queue.size() - 1);
    const auto d = queue[i];
    switch (in.ConsumeIntegralInRange<int>(0, 2)) {
      case 0: queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(i)); break;  // lost
      case 1: queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(i)); [[fallthrough]];
      default: open(&queue == &to_a_ ? a_ : b_, d);  // delivered (and, default, kept to repeat)
    }
  }
  void flush(std::deque<std::vector<std::byte>>& queue, ReliableLink& link, bool) {
    while (!queue.empty()) {
      const auto d = std::move(queue.front());
      queue.pop_front();
      open(link, d);
    }
  }

  void inject_raw(FuzzedDataProvider& in) {
    injected_ = true;
    std::vector<std::byte> d(in.ConsumeIntegralInRange<std::size_t>(0, 120));
    const auto bytes = in.ConsumeBytes<std::byte>(d.size());
    std::copy(bytes.begin(), bytes.end(), d.begin());
    if (d.size() >= sizeof(FrameHeader) && in.ConsumeBool()) {  // a plausible header, fields from the fuzzer
      FrameHeader h{};
      std::memcpy(&h, d.data(), sizeof(h));
      h.magic = kFrameMagic;
      h.version = kFrameVersion;
      h.src_node = 2;
      h.dst_node = 1;
      if (in.ConsumeBool()) h.length = static_cast<std::uint32_t>(d.size() - sizeof(h));
      if (in.ConsumeBool()) h.session = 0xb;
      std::memcpy(d.data(), &h, sizeof(h));
    }
    open(a_, d);
  }

  // A real datagram (from either side) with a header field or byte changed.
  void inject_changed(FuzzedDataProvider& in) {
    if (seen_.empty()) return;
    injected_ = true;
    auto d = seen_[in.ConsumeIntegralInRange<std::size_t>(0, seen_.size() - 1)];
    const auto at = in.ConsumeIntegralInRange<std::size_t>(0, d.size() - 1);
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0: d[at] ^= static_cast<std::byte>(in.ConsumeIntegralInRange<int>(1, 255)); break;
      case 1: d.resize(at); break;
      case 2: {
        const auto value = in.ConsumeIntegral<std::uint64_t>();
        std::memcpy(d.data() + (at & ~std::size_t{7}) % (sizeof(FrameHeader) - 7), &value, sizeof(value));
        break;
      }
      default: d.push_back(static_cast<std::byte>(in.ConsumeIntegral<std::uint8_t>())); break;
    }
    open(a_, d);
  }

  // Refused exactly when counted as malformed or stale.
  static void open(ReliableLink& link, std::span<const std::byte> d) {
    const auto before = link.stats().malformed + link.stats().stale;
    const auto got = link.on_datagram(d);
    const auto after = link.stats().malformed + link.stats().stale;
    if ((got == ReliableLink::Received::kRejected) != (after == before + 1) || after < before) std::abort();
  }

  void take() {
    std::vector<std::byte> m;
    while (a_.receive(m)) {
      if (injected_) continue;
      std::uint64_t index = 0;
      if (m.size() < sizeof(index)) std::abort();
      std::memcpy(&index, m.data(), sizeof(index));
      if (index != next_expected_) std::abort();  // lost, repeated or out of order
      ++next_expected_;
    }
    while (b_.receive(m)) {
    }
  }

  ReliableLink a_{{1, 2, 0xa, kWindow, std::chrono::microseconds(3000)}};
  ReliableLink b_{{2, 1, 0xb, kWindow, std::chrono::microseconds(3000)}};
  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1);
  std::deque<std::vector<std::byte>> to_a_;
  std::deque<std::vector<std::byte>> to_b_;
  std::vector<std::vector<std::byte>> seen_;
  std::uint64_t sent_by_b_ = 0;
  std::uint64_t next_expected_ = 0;
  bool injected_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Wire wire;
  wire.run(in);
  return 0;
}
