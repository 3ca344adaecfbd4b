// `vdtu bench session`: what secure sessions cost the bridge thread. Per
// datagram: sealing at the sender and opening at the receiver, for a small
// frame and the largest one, next to the AEAD alone on the same bytes (the
// floor). Per handshake: two endpoints from nothing to a confirmed session,
// in memory (five X25519 operations between them).
#include <fmt/core.h>

#include <chrono>
#include <stdexcept>
#include <vector>

#include "baselines.hpp"
#include "bridge/session_crypto.hpp"
#include "bridge/session_endpoint.hpp"
#include "suites.hpp"

namespace vdtu::bench {
namespace {

using bridge::NodeId;
using bridge::SessionEndpoint;
using Clock = SessionEndpoint::Clock;

void discard(NodeId /*peer*/, std::span<const std::byte> /*datagram*/) {}

// Two endpoints that hand each other their datagrams at once.
class SessionPair {
 public:
  explicit SessionPair(const bridge::ClusterKey& key)
      : one_(config(1, key), peers(2)), two_(config(2, key), peers(1)) {
    for (int step = 0; step < 100; ++step) {
      if (one_.established(2) && two_.established(1) && one_.session_id(2) == two_.session_id(1)) return;
      now_ += std::chrono::milliseconds(1);
      one_.poll(now_, to_wire(1));
      two_.poll(now_, to_wire(2));
      while (!wire_.empty()) {
        auto [from, datagram] = std::move(wire_.back());
        wire_.pop_back();
        (from == 1 ? two_ : one_).open(datagram, from, now_, to_wire(from == 1 ? 2 : 1));
      }
    }
    throw std::runtime_error("bench session: no session after 100 steps");
  }

  // One frame from node 1 to node 2.
  void carry(std::span<const std::byte> frame) {
    if (one_.seal(2, frame, sealed_) != Status::kOk ||
        two_.open(sealed_, 1, now_, discard).verdict != bridge::Verdict::kFrame) {
      throw std::runtime_error("bench session: a frame did not make it");
    }
  }

 private:
  static bridge::SessionConfig config(NodeId self, const bridge::ClusterKey& key) {
    bridge::SessionConfig c;
    c.self = self;
    c.cluster_key = key;
    return c;
  }
  static std::vector<NodeId> peers(NodeId peer) { return {peer}; }
  bridge::SessionTransmit to_wire(NodeId from) {
    return [this, from](NodeId, std::span<const std::byte> d) {
      wire_.emplace_back(from, std::vector(d.begin(), d.end()));
    };
  }

  SessionEndpoint one_;
  SessionEndpoint two_;
  Clock::time_point now_ = Clock::now();
  std::vector<std::pair<NodeId, std::vector<std::byte>>> wire_;
  std::vector<std::byte> sealed_;
};

std::vector<double> aead_alone_ns(std::size_t iterations, std::size_t bytes) {
  bridge::SymmetricKey key;
  const std::vector<std::byte> header(sizeof(bridge::SealedHeader));
  const std::vector<std::byte> plain(bytes, std::byte{0x5a});
  std::vector<std::byte> sealed(bytes + bridge::kTagBytes);
  std::vector<std::byte> opened(bytes);
  std::uint64_t counter = 0;
  return time_each(iterations, iterations / 10, [&] {
    bridge::seal_aead(key, counter, header, plain, sealed.data());
    if (!bridge::open_aead(key, counter++, header, sealed, opened.data())) {
      throw std::runtime_error("bench session: the AEAD failed");
    }
  });
}

}  // namespace

void run_session_suite(Reporter& reporter, const SuiteOptions& options) {
  const std::string suite = "session";
  const auto key = bridge::parse_cluster_key(bridge::random_cluster_key_hex());
  const std::size_t small_n = options.quick ? 2'000 : 100'000;
  const std::size_t large_n = options.quick ? 200 : 10'000;
  const std::size_t handshakes = options.quick ? 20 : 1'000;
  const std::size_t largest = sizeof(bridge::FrameHeader) + bridge::kMaxFramePayload;

  SessionPair pair(key);
  for (const auto& [bytes, n] : {std::pair{std::size_t{64}, small_n}, {largest, large_n}}) {
    reporter.progress(fmt::format("sealing {}-byte frames", bytes));
    reporter.add(
        latency_result(suite, fmt::format("baseline_aead_alone_{}B", bytes), aead_alone_ns(n, bytes)));
    const std::vector<std::byte> frame(bytes, std::byte{0x5a});
    reporter.add(latency_result(suite, fmt::format("seal_open_{}B", bytes),
                                time_each(n, n / 10, [&] { pair.carry(frame); })));
  }
  reporter.progress("handshakes");
  reporter.add(latency_result(suite, "handshake",
                              time_each(handshakes, handshakes / 10, [&] { SessionPair fresh(key); })));
  reporter.note(
      fmt::format("seal_open_{}B: the largest frame (40-byte header, 65 000 bytes), {} bytes on the wire",
                  largest, largest + bridge::kSealOverhead));
}

}  // namespace vdtu::bench
