// A node holding secure sessions with two peers gets arbitrary datagrams,
// interleaved with genuine ones: frames the peers sealed (delivered late,
// twice, changed, cut short, from the wrong peer's address), handshake
// messages replayed or changed, time passing (repeats, rekeys, timeouts),
// restarts on either side. Findings: any crash or sanitizer report, and any
// frame the node accepts that the expected peer did not seal for it, that
// differs from what was sealed, or that it accepts a second time.
#include <fuzzer/FuzzedDataProvider.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "bridge/session_endpoint.hpp"

namespace {

using vdtu::bridge::NodeId;
using vdtu::bridge::SessionConfig;
using vdtu::bridge::SessionEndpoint;
using vdtu::bridge::Verdict;
using Clock = SessionEndpoint::Clock;

// libsodium asks this for every random byte: a counter-seeded stream, reset
// per input, so each input replays the same keys and the same run. (A C
// callback cannot carry state, hence the one global.)
std::uint64_t g_random_calls = 0;

void deterministic_bytes(void* const buf, const std::size_t size) {
  std::array<unsigned char, randombytes_SEEDBYTES> seed{};
  const std::uint64_t call = g_random_calls++;
  std::memcpy(seed.data(), &call, sizeof(call));
  ::randombytes_buf_deterministic(buf, size, seed.data());
}
std::uint32_t deterministic_u32() {
  std::uint32_t value = 0;
  deterministic_bytes(&value, sizeof(value));
  return value;
}
const char* deterministic_name() { return "vdtu-fuzz-deterministic"; }

randombytes_implementation g_deterministic = {
    deterministic_name, deterministic_u32, nullptr, nullptr, deterministic_bytes, nullptr};

struct Datagram {
  NodeId from = 0;
  NodeId to = 0;
  std::vector<std::byte> bytes;
};

struct SealedFrame {  // what a peer sealed for the node: the oracle
  NodeId sender = 0;
  std::vector<std::byte> datagram;
  std::vector<std::byte> frame;
  bool accepted = false;
};

constexpr NodeId kNode = 1;
constexpr NodeId kPeers[] = {2, 3};

class Scenario {
 public:
  Scenario() {
    for (const NodeId id : {kNode, kPeers[0], kPeers[1]}) start(id);
    for (int i = 0; i < 20 && !(node().established(2) && node().established(3)); ++i) advance(1);
  }

  void run(FuzzedDataProvider& in) {
    for (int op = 0; op < 200 && in.remaining_bytes() > 0; ++op) {
      switch (in.ConsumeIntegralInRange<int>(0, 7)) {
        case 0:
          open_at_node(in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 300)), peer(in));
          break;
        case 1: seal(in); break;
        case 2: deliver_sealed(in, false); break;
        case 3: deliver_sealed(in, true); break;
        case 4: advance(in.ConsumeIntegralInRange<int>(0, 7000)); break;
        case 5: replay_handshake(in); break;
        case 6: start(in.ConsumeIntegralInRange<NodeId>(2, 3)); break;  // a peer restarts
        case 7: node().restart(in.ConsumeIntegralInRange<NodeId>(2, 3)); break;
      }
    }
  }

 private:
  SessionEndpoint& node() { return *endpoints_[kNode]; }
  static NodeId peer(FuzzedDataProvider& in) {
    return in.ConsumeIntegralInRange<NodeId>(2, 4);
  }  // 4: no peer

  void start(NodeId id) {
    SessionConfig config;
    config.self = id;
    config.cluster_key.fill(std::byte{0x5c});
    config.rekey_after = std::chrono::seconds(20);
    std::vector<NodeId> peers;
    if (id == kNode) {
      peers.assign(std::begin(kPeers), std::end(kPeers));
    } else {
      peers.push_back(kNode);
    }
    endpoints_[id] = std::make_unique<SessionEndpoint>(config, peers);
  }

  vdtu::bridge::SessionTransmit to_wire(NodeId from) {
    return [this, from](NodeId to, std::span<const std::byte> d) {
      if (wire_.size() < 256) wire_.push_back({from, to, {d.begin(), d.end()}});
      if (from != kNode && transcript_.size() < 64) transcript_.push_back({from, to, {d.begin(), d.end()}});
    };
  }

  void open_at_node(std::span<const std::byte> datagram, NodeId expected) {
    const auto opened = node().open(datagram, expected, now_, to_wire(kNode));
    if (opened.verdict != Verdict::kFrame) return;
    const auto it = std::find_if(frames_.begin(), frames_.end(), [&](const SealedFrame& f) {
      return f.sender == expected &&
             std::equal(f.datagram.begin(), f.datagram.end(), datagram.begin(), datagram.end());
    });
    if (it == frames_.end() || it->accepted || opened.peer != expected ||
        !std::equal(opened.frame.begin(), opened.frame.end(), it->frame.begin(), it->frame.end())) {
      std::abort();  // accepted what the expected peer never sealed, altered, or twice
    }
    it->accepted = true;
  }

  void seal(FuzzedDataProvider& in) {
    const NodeId sender = kPeers[in.ConsumeIntegralInRange<int>(0, 1)];
    auto frame = in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 80));
    std::vector<std::byte> datagram;
    if (frames_.size() < 128 && endpoints_[sender]->seal(kNode, frame, datagram) == vdtu::Status::kOk) {
      frames_.push_back({sender, std::move(datagram), std::move(frame), false});
    }
  }

  void deliver_sealed(FuzzedDataProvider& in, bool change) {
    if (frames_.empty()) return;
    auto datagram = frames_[in.ConsumeIntegralInRange<std::size_t>(0, frames_.size() - 1)].datagram;
    if (change) mutate(in, datagram);
    open_at_node(datagram, peer(in));
  }

  void replay_handshake(FuzzedDataProvider& in) {
    if (transcript_.empty()) return;
    auto d = transcript_[in.ConsumeIntegralInRange<std::size_t>(0, transcript_.size() - 1)];
    if (in.ConsumeBool()) mutate(in, d.bytes);
    open_at_node(d.bytes, in.ConsumeBool() ? d.from : peer(in));
  }

  static void mutate(FuzzedDataProvider& in, std::vector<std::byte>& d) {
    switch (in.ConsumeIntegralInRange<int>(0, 2)) {
      case 0:
        if (!d.empty()) {
          d[in.ConsumeIntegralInRange<std::size_t>(0, d.size() - 1)] ^=
              static_cast<std::byte>(in.ConsumeIntegralInRange<int>(1, 255));
        }
        break;
      case 1: d.resize(in.ConsumeIntegralInRange<std::size_t>(0, d.size())); break;
      case 2: d.push_back(static_cast<std::byte>(in.ConsumeIntegral<std::uint8_t>())); break;
    }
  }

  // Time passes in 1 ms steps (at most 64 of them, then the rest at once);
  // everyone polls and the handshake traffic between them is delivered.
  void advance(int milliseconds) {
    for (int step = 0; step <= std::min(milliseconds, 64); ++step) {
      now_ += std::chrono::milliseconds(step == 64 ? milliseconds - 63 : 1);
      for (auto& [id, endpoint] : endpoints_) endpoint->poll(now_, to_wire(id));
      std::deque<Datagram> due;
      due.swap(wire_);
      for (const auto& d : due) {
        if (d.to == kNode) {
          open_at_node(d.bytes, d.from);
        } else {
          endpoints_[d.to]->open(d.bytes, d.from, now_, to_wire(d.to));
        }
      }
    }
  }

  std::map<NodeId, std::unique_ptr<SessionEndpoint>> endpoints_;
  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1);
  std::deque<Datagram> wire_;
  std::vector<Datagram> transcript_;  // handshake traffic from the peers, for replays
  std::vector<SealedFrame> frames_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  ::randombytes_set_implementation(&g_deterministic);
  return ::sodium_init() < 0 ? 1 : 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  g_random_calls = 0;
  FuzzedDataProvider in(data, size);
  Scenario scenario;
  scenario.run(in);
  return 0;
}
