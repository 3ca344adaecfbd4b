#pragma once
// Loss, duplication and reordering of outgoing datagrams, in process: this
// kernel has no `tc netem`. Deterministic for a given seed, so a failing run
// can be repeated.

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace vdtu::bridge {

struct FaultRates {
  double loss = 0;       // probability that a datagram is dropped
  double duplicate = 0;  // ... sent twice
  double reorder = 0;    // ... held back and sent after the next one
  std::uint64_t seed = 1;

  [[nodiscard]] bool any() const { return loss > 0 || duplicate > 0 || reorder > 0; }
};

struct FaultStats {
  std::uint64_t dropped = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
};

class FaultInjector {
 public:
  using Send = std::function<void(std::span<const std::byte>)>;

  explicit FaultInjector(FaultRates rates) : rates_(rates), random_(rates.seed) {}

  // Passes `datagram` to `send` zero, one or two times, maybe later.
  void transmit(std::span<const std::byte> datagram, const Send& send) {
    if (chance(rates_.loss)) {
      ++stats_.dropped;
      return;
    }
    if (!held_ && chance(rates_.reorder)) {
      held_.emplace(datagram.begin(), datagram.end());
      ++stats_.reordered;
      return;
    }
    send(datagram);
    if (chance(rates_.duplicate)) {
      ++stats_.duplicated;
      send(datagram);
    }
    if (held_) {
      send(*held_);
      held_.reset();
    }
  }

  [[nodiscard]] const FaultStats& stats() const { return stats_; }

 private:
  bool chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(random_) < p; }

  FaultRates rates_;
  std::mt19937_64 random_;
  std::optional<std::vector<std::byte>> held_;
  FaultStats stats_;
};

}  // namespace vdtu::bridge
