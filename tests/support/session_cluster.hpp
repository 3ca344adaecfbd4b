#pragma once
// Secure-session endpoints joined by an in-memory wire with a simulated
// clock: every datagram is logged (for replays), may be lost, duplicated,
// delayed (reordered) or blocked, and is opened by its receiver with the
// sender as the expected peer, as a bridge would from the source address.

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "bridge/session_endpoint.hpp"

namespace vdtu::testing {

using bridge::NodeId;
using bridge::Opened;
using bridge::PeerChange;
using bridge::SessionConfig;
using bridge::SessionEndpoint;
using bridge::Verdict;

struct WireFaults {
  double loss = 0;
  double duplicate = 0;
  std::chrono::milliseconds max_delay{0};  // each copy is delayed by 0..max_delay: reordering
};

class SessionCluster {
 public:
  using Clock = SessionEndpoint::Clock;

  struct Datagram {
    NodeId from = 0;
    NodeId to = 0;
    std::vector<std::byte> bytes;
  };
  struct Event {  // an accepted datagram that changed what a node knows about a peer
    Clock::time_point at;
    NodeId node = 0;
    NodeId peer = 0;
    PeerChange change = PeerChange::kNone;
  };
  struct Frame {  // what test frames carry (no padding: every byte is set)
    std::uint32_t from = 0;
    std::uint32_t to = 0;
    std::uint64_t seq = 0;
  };

  explicit SessionCluster(std::vector<NodeId> ids, WireFaults faults = {}, std::uint64_t seed = 1,
                          SessionConfig base = {})
      : ids_(std::move(ids)), faults_(faults), random_(seed), base_(base) {
    key_ = bridge::parse_cluster_key(bridge::random_cluster_key_hex());
    for (const NodeId id : ids_) start_process(id);
  }

  SessionEndpoint& at(NodeId id) { return *nodes_.at(id); }
  [[nodiscard]] const bridge::ClusterKey& key() const { return key_; }
  [[nodiscard]] SessionConfig config_for(NodeId id) const {
    SessionConfig c = base_;
    c.self = id;
    c.cluster_key = key_;
    return c;
  }
  [[nodiscard]] std::vector<NodeId> peers_of(NodeId id) const {
    std::vector<NodeId> peers;
    std::copy_if(ids_.begin(), ids_.end(), std::back_inserter(peers), [&](NodeId p) { return p != id; });
    return peers;
  }

  // A new process with the same id: new keys, new incarnation, nothing remembered.
  void start_process(NodeId id) { start_process(id, config_for(id)); }
  void start_process(NodeId id, const SessionConfig& config) {
    nodes_[id] = std::make_unique<SessionEndpoint>(config, peers_of(id));
  }

  bridge::SessionTransmit transmit_from(NodeId from) {
    return [this, from](NodeId to, std::span<const std::byte> bytes) {
      put({from, to, {bytes.begin(), bytes.end()}});
    };
  }

  // Sends what the wire would carry (logged, then subject to faults and `block`).
  void put(Datagram d) {
    log.push_back(d);
    if (block && block(d)) return;
    if (chance(faults_.loss)) return;
    const int copies = chance(faults_.duplicate) ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
      const auto delay = std::chrono::milliseconds(
          std::uniform_int_distribution<std::int64_t>(0, faults_.max_delay.count())(random_));
      in_flight_.push_back({now + delay, d});
    }
  }

  // Opens `bytes` at `to` as if it came from `from`'s address.
  Opened deliver(NodeId to, NodeId from, std::span<const std::byte> bytes) {
    const auto opened = at(to).open(bytes, from, now, transmit_from(to));
    if (opened.change != PeerChange::kNone) events.push_back({now, to, opened.peer, opened.change});
    if (opened.verdict == Verdict::kFrame) {
      Frame f{};
      if (opened.frame.size() == sizeof(f)) std::memcpy(&f, opened.frame.data(), sizeof(f));
      frames.push_back(f);
    }
    return opened;
  }

  // Seals a small numbered frame from `from` to `to` and puts it on the wire.
  Status send_frame(NodeId from, NodeId to, std::uint64_t seq) {
    const Frame f{from, to, seq};
    std::vector<std::byte> datagram;
    const auto status = at(from).seal(to, std::as_bytes(std::span(&f, 1)), datagram);
    if (status == Status::kOk) put({from, to, std::move(datagram)});
    return status;
  }

  // One millisecond: every node polls, then what is due arrives (in random order).
  void step(std::chrono::milliseconds dt = std::chrono::milliseconds(1)) {
    now += dt;
    for (const NodeId id : ids_) at(id).poll(now, transmit_from(id));
    std::vector<Datagram> due;
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (it->due <= now) {
        due.push_back(std::move(it->datagram));
        it = in_flight_.erase(it);
      } else {
        ++it;
      }
    }
    std::shuffle(due.begin(), due.end(), random_);
    for (const auto& d : due) deliver(d.to, d.from, d.bytes);
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto end = now + limit;
    while (!done()) {
      if (now >= end) return false;
      step();
    }
    return true;
  }

  // Both ends use the same current session.
  bool paired(NodeId a, NodeId b) {
    return at(a).established(b) && at(b).established(a) && at(a).session_id(b) == at(b).session_id(a);
  }
  bool all_paired() {
    for (const NodeId a : ids_) {
      for (const NodeId b : ids_) {
        if (a < b && !paired(a, b)) return false;
      }
    }
    return true;
  }

  std::size_t count_events(NodeId node, NodeId peer, PeerChange change) const {
    return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const Event& e) {
      return e.node == node && e.peer == peer && e.change == change;
    }));
  }

  Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
  std::vector<Datagram> log;
  std::vector<Event> events;
  std::vector<Frame> frames;  // every frame opened, in order
  std::function<bool(const Datagram&)> block;

 private:
  struct InFlight {
    Clock::time_point due;
    Datagram datagram;
  };
  bool chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(random_) < p; }

  std::vector<NodeId> ids_;
  WireFaults faults_;
  std::mt19937_64 random_;
  SessionConfig base_;
  bridge::ClusterKey key_{};
  std::map<NodeId, std::unique_ptr<SessionEndpoint>> nodes_;
  std::vector<InFlight> in_flight_;
};

// The kind byte of a datagram of this protocol.
inline bridge::SessionKind kind_of(const SessionCluster::Datagram& d) {
  return d.bytes.empty() ? bridge::SessionKind{0} : static_cast<bridge::SessionKind>(d.bytes[0]);
}

}  // namespace vdtu::testing
